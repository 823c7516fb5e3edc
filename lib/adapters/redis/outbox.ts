import type { Redis } from 'ioredis'
import type { RedisAdapterStats } from './stats.js'

/**
 * Envelopes published during one turn of the event loop, sent together at its end: one PUBLISH
 * each still, but written as one pipeline, which costs a fraction of separate commands (about
 * 9 µs per envelope instead of 40 in a burst). Order is kept: every command goes down the one
 * connection in publish order.
 */
export class Outbox {
  readonly #redis: Redis
  readonly #channel: string
  readonly #stats: RedisAdapterStats
  #messages: Buffer[] = []
  #flushing: NodeJS.Immediate | undefined

  constructor (redis: Redis, channel: string, stats: RedisAdapterStats) {
    this.#redis = redis
    this.#channel = channel
    this.#stats = stats
  }

  /** Queues an encoded envelope for the end of this turn. */
  push (message: Buffer): void {
    this.#messages.push(message)
    this.#flushing ??= setImmediate(() => this.flush())
  }

  /** Sends what is queued now (at the end of the turn, or at close: what was published before close still goes). */
  flush (): void {
    if (this.#flushing !== undefined) clearImmediate(this.#flushing)
    this.#flushing = undefined
    const messages = this.#messages
    if (messages.length === 0) return
    this.#messages = []
    const redis = this.#redis
    const stats = this.#stats
    if (redis.status !== 'ready') {
      stats.dropped += messages.length
      return
    }
    if (messages.length === 1) {
      // Rejected before it left (link down) or in flight when the link broke: either way not delivered by us.
      redis.publish(this.#channel, messages[0] as Buffer).then(() => { stats.published++ }, () => { stats.dropped++ })
      return
    }
    const pipeline = redis.pipeline()
    for (const message of messages) pipeline.publish(this.#channel, message)
    pipeline.exec().then((results) => {
      for (const [error] of results as Array<[Error | null, unknown]>) {
        if (error === null) stats.published++
        else stats.dropped++
      }
    }, () => { stats.dropped += messages.length })
  }
}
