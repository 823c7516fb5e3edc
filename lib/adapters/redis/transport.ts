import type { Cluster, Redis } from 'ioredis'

/** A standalone Redis (or Sentinel) client, or a Redis Cluster one. */
export type AnyRedis = Redis | Cluster

/** Whether a client is an ioredis `Cluster` (duck-typed: the application may hold another copy of ioredis). */
export function isCluster (redis: AnyRedis): redis is Cluster {
  return (redis as Partial<Cluster>).isCluster === true
}

/**
 * Pub/sub as the Redis at hand speaks it: classic (PUBLISH, SUBSCRIBE) on a standalone Redis,
 * sharded (SPUBLISH, SSUBSCRIBE; Redis 7) on a Redis Cluster, where a channel lives on the shard
 * of its hash slot and only that shard carries its messages. Classic pub/sub on a cluster would
 * copy every message to every shard: the very traffic that per-room channels are there to spare.
 */
export class PubSub {
  /** Publishes, lease writes and count queries. */
  readonly commands: AnyRedis
  /** In subscriber mode. */
  readonly subscriber: AnyRedis
  /** Sharded pub/sub (a cluster) or classic. */
  readonly sharded: boolean
  /** The subscriber's event for a message, with the channel and payload as Buffers. */
  readonly messageEvent: 'messageBuffer' | 'smessageBuffer'
  /** The client's ioredis keyPrefix, which ioredis adds to sharded channels (they are keys to it) but not to classic ones. */
  readonly #keyPrefix: string

  /** @param keyPrefix the commands client's keyPrefix: channel names given here already hold it */
  constructor (commands: AnyRedis, subscriber: AnyRedis, keyPrefix: string) {
    this.commands = commands
    this.subscriber = subscriber
    this.sharded = isCluster(commands)
    this.messageEvent = this.sharded ? 'smessageBuffer' : 'messageBuffer'
    this.#keyPrefix = keyPrefix
  }

  /** A channel's name as ioredis must be given it: without the keyPrefix where ioredis adds it. */
  #given (channel: string): string {
    return this.sharded && this.#keyPrefix !== '' ? channel.slice(this.#keyPrefix.length) : channel
  }

  /** Publishes on a channel, named as Redis knows it (keyPrefix included). */
  publish (channel: string, message: Buffer): Promise<unknown> {
    return this.sharded ? this.commands.spublish(this.#given(channel), message) : this.commands.publish(channel, message)
  }

  subscribe (channel: string): Promise<unknown> {
    return this.sharded ? this.subscriber.ssubscribe(this.#given(channel)) : this.subscriber.subscribe(channel)
  }

  unsubscribe (channel: string): Promise<unknown> {
    return this.sharded ? this.subscriber.sunsubscribe(this.#given(channel)) : this.subscriber.unsubscribe(channel)
  }
}
