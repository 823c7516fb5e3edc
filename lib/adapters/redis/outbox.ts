import type { Redis } from 'ioredis'
import { stampSequence } from './codec.ts'
import type { CommandWatch } from './stall.ts'
import type { AdapterCounters } from './stats.ts'

/** An envelope waiting for the end of the turn. */
interface Queued {
  channel: string
  message: Buffer
}

/**
 * Envelopes published during one turn of the event loop, sent together at its end: one PUBLISH
 * each still, but written as one pipeline, which costs a fraction of separate commands (about
 * 9 µs per envelope instead of 40 in a burst). Order is kept: every command goes down the one
 * connection in publish order. Each envelope gets its channel's next sequence number as it is
 * handed to Redis.
 */
export class Outbox {
  /** Bytes queued for the end of this turn. */
  bytes = 0
  readonly #redis: Redis
  readonly #watch: CommandWatch
  readonly #stats: AdapterCounters
  /** The last sequence number given on each channel. */
  readonly #sequences = new Map<string, number>()
  #queued: Queued[] = []
  #flushing: NodeJS.Immediate | undefined

  constructor (redis: Redis, watch: CommandWatch, stats: AdapterCounters) {
    this.#redis = redis
    this.#watch = watch
    this.#stats = stats
  }

  /** Queues an encoded envelope for the end of this turn. */
  push (channel: string, message: Buffer): void {
    this.#queued.push({ channel, message })
    this.bytes += message.length
    this.#flushing ??= setImmediate(() => this.flush())
  }

  /** Sends what is queued now (at the end of the turn, or at close: what was published before close still goes). */
  flush (): void {
    if (this.#flushing !== undefined) clearImmediate(this.#flushing)
    this.#flushing = undefined
    const queued = this.#queued
    const bytes = this.bytes
    if (queued.length === 0) return
    this.#queued = []
    this.bytes = 0
    const redis = this.#redis
    const stats = this.#stats
    // Found down or stalled since they were published: dropped before they left, without a number.
    if (redis.status !== 'ready' || this.#watch.stalled) {
      stats.dropped += queued.length
      return
    }
    for (const { channel, message } of queued) {
      const sequence = ((this.#sequences.get(channel) ?? 0) + 1) >>> 0
      this.#sequences.set(channel, sequence)
      stampSequence(message, sequence)
    }
    if (queued.length === 1) {
      const { channel, message } = queued[0] as Queued
      // Rejected before it left (link down) or in flight when the link broke: either way not delivered by us.
      this.#watch.track(redis.publish(channel, message), bytes).then(() => { stats.published++ }, () => { stats.dropped++ })
      return
    }
    const pipeline = redis.pipeline()
    for (const { channel, message } of queued) pipeline.publish(channel, message)
    this.#watch.track(pipeline.exec(), bytes).then((results) => {
      for (const [error] of results as Array<[Error | null, unknown]>) {
        if (error === null) stats.published++
        else stats.dropped++
      }
    }, () => { stats.dropped += queued.length })
  }
}
