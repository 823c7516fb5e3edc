import type { Redis } from 'ioredis'
import { stampSequence } from './codec.ts'
import { record, recordInPipeline, type RecordCall } from './history.ts'
import { BODY_SEQUENCE_OFFSET } from './record-codec.ts'
import type { CommandWatch } from './stall.ts'
import type { AdapterCounters } from './stats.ts'
import type { PubSub } from './transport.ts'

/** An envelope waiting for the end of the turn. */
interface Queued {
  channel: string
  /** A plain envelope, or the body of a recorded one. */
  message: Buffer
  /** Set for a recorded envelope: the record script publishes it, and numbers on its channel are its own. */
  record: RecordCall | undefined
  /** Set for a node message (no sequence number): told how many subscribers Redis gave it to, or that it was not sent. */
  reply?: PublishReply
}

/** What the sender of a node message learns of its publish. */
export interface PublishReply {
  /** Redis published it to this many subscribers (nodes). */
  sent: (receivers: number) => void
  /** It was not sent, or Redis refused it. */
  failed: () => void
}

/**
 * What sets a channel's recorded envelopes' counter apart from its plain ones': the two are
 * numbered apart, as a node receives its own recorded envelopes back but not its plain ones (it
 * would see every plain publish of its own as a gap in one shared numbering).
 */
export const RECORDED_SEQUENCE = '\0r'

/**
 * Ms a channel's sequence counter outlives its last publish (between one and two of these). A
 * node that publishes to a room per user must not keep a counter for every room it ever
 * reached; a counter that starts again at 1 reads as a new sequence to receivers, not as a gap.
 */
const COUNTER_LIFETIME = 60_000

/**
 * Envelopes published (or recorded: see history.ts) together, sent together: those of one callback
 * when Redis is idle, those of one turn of the event loop while it is busy (see `#schedule`). On a
 * standalone Redis they go as one pipeline, which costs a fraction of separate commands (about
 * 9 µs per envelope instead of 40 in a burst); on a cluster each goes to the shard of its
 * channel (ioredis groups those of one turn per shard). Order is kept per channel: a channel's
 * commands go down one connection in publish order. Each envelope gets its channel's next
 * sequence number as it is handed to Redis.
 */
export class Outbox {
  /** Bytes queued for the end of this turn. */
  bytes = 0
  readonly #pubsub: PubSub
  readonly #watch: CommandWatch
  readonly #stats: AdapterCounters
  /** The last sequence number given on each channel: this period's channels and the last period's. */
  #sequences = new Map<string, number>()
  #previousSequences = new Map<string, number>()
  #periodStart = Date.now()
  #queued: Queued[] = []
  /** A flush is due (at the end of this callback, or of this loop turn). */
  #scheduled = false
  /** Set when the due flush waits for the end of the loop turn. */
  #immediate: NodeJS.Immediate | undefined
  readonly #flushDue = (): void => {
    if (this.#scheduled) this.flush()
  }

  constructor (pubsub: PubSub, watch: CommandWatch, stats: AdapterCounters) {
    this.#pubsub = pubsub
    this.#watch = watch
    this.#stats = stats
  }

  /** Queues an encoded envelope for the end of this turn. */
  push (channel: string, message: Buffer): void {
    this.#queued.push({ channel, message, record: undefined })
    this.bytes += message.length
    this.#schedule()
  }

  /**
   * Queues a node message for the end of this turn, in one order with the envelopes (a
   * `disconnect` after a broadcast reaches each node after the broadcast).
   */
  pushNodeMessage (channel: string, message: Buffer, reply: PublishReply): void {
    this.#queued.push({ channel, message, record: undefined, reply })
    this.bytes += message.length
    this.#schedule()
  }

  /** Queues a recorded body for the end of this turn, in one order with the plain envelopes. */
  pushRecord (call: RecordCall, body: Buffer): void {
    this.#queued.push({ channel: call.channel, message: body, record: call })
    this.bytes += body.length
    this.#schedule()
  }

  /**
   * Schedules the flush of what is queued. While Redis has none of our commands to answer, at the
   * end of the current callback: a publish then leaves at once instead of waiting for every other
   * I/O callback of this loop turn (the poll phase), which added up to a millisecond and more to
   * cross-node latency on a busy node.
   * While some are in flight, at the end of the loop turn: a busy node's publishes of many
   * callbacks (a message from each of many clients) then share one pipeline, which costs a
   * fraction of separate commands.
   */
  #schedule (): void {
    if (this.#scheduled) return
    this.#scheduled = true
    if (this.#watch.pendingBytes === 0) process.nextTick(this.#flushDue)
    else this.#immediate = setImmediate(this.#flushDue)
  }

  /** Sends what is queued now (when scheduled, or at close: what was published before close still goes). */
  flush (): void {
    if (this.#immediate !== undefined) clearImmediate(this.#immediate)
    this.#immediate = undefined
    this.#scheduled = false
    const queued = this.#queued
    const bytes = this.bytes
    if (queued.length === 0) return
    this.#queued = []
    this.bytes = 0
    const pubsub = this.#pubsub
    const stats = this.#stats
    // Found down or stalled since they were published: dropped before they left, without a number.
    if (pubsub.commands.status !== 'ready' || this.#watch.stalled) {
      for (const { reply } of queued) {
        if (reply === undefined) stats.dropped++
        else reply.failed()
      }
      return
    }
    this.#ageCounters()
    for (const { channel, message, record: call, reply } of queued) {
      if (reply !== undefined) continue
      if (call === undefined) stampSequence(message, this.#next(channel))
      else stampSequence(message, this.#next(channel + RECORDED_SEQUENCE), BODY_SEQUENCE_OFFSET)
    }
    if (queued.length === 1 || pubsub.sharded) {
      for (const entry of queued) {
        const { channel, message, record: call } = entry
        const sent = call === undefined ? pubsub.publish(channel, message) : record(pubsub.commands, call, message)
        // Rejected before it left (link down) or in flight when the link broke: either way not delivered by us.
        this.#watch.track(sent, message.length).then((result) => { settled(entry, null, result, stats) }, () => { settled(entry, new Error('not sent'), undefined, stats) })
      }
      return
    }
    const pipeline = (pubsub.commands as Redis).pipeline()
    for (const { channel, message, record: call } of queued) {
      if (call === undefined) pipeline.publish(channel, message)
      else recordInPipeline(pipeline, call, message)
    }
    this.#watch.track(pipeline.exec(), bytes).then((results) => {
      (results as Array<[Error | null, unknown]>).forEach(([error, result], index) => { settled(queued[index] as Queued, error, result, stats) })
    }, () => {
      for (const entry of queued) settled(entry, new Error('not sent'), undefined, stats)
    })
  }

  /** The channel's next sequence number (u32, wrapping). */
  #next (channel: string): number {
    const last = this.#sequences.get(channel) ?? this.#previousSequences.get(channel) ?? 0
    const sequence = (last + 1) >>> 0
    this.#sequences.set(channel, sequence)
    return sequence
  }

  /** Forgets the counters of channels unused for a whole period. */
  #ageCounters (): void {
    const now = Date.now()
    if (now - this.#periodStart < COUNTER_LIFETIME) return
    this.#periodStart = now
    this.#previousSequences = this.#sequences
    this.#sequences = new Map()
  }
}

/** Counts a queued message's outcome, or tells its sender (a node message is not an envelope: it is not counted). */
function settled (entry: Queued, error: Error | null, result: unknown, stats: AdapterCounters): void {
  const reply = entry.reply
  if (reply === undefined) {
    if (error === null) stats.published++
    else stats.dropped++
  } else if (error === null) {
    reply.sent(Number(result))
  } else {
    reply.failed()
  }
}
