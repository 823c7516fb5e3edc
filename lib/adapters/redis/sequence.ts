import type { FastifyBaseLogger } from 'fastify'

/** Half the u32 range: a jump forward by less is a gap, by more a sequence that started again. */
const HALF_RANGE = 2 ** 31
/** A gap episode gathers the gaps of this many ms into one warning. */
const EPISODE = 1000
/** At most one warning per this many ms, however often gaps come. */
const MIN_REPORT_INTERVAL = 10_000

/** What `see` returns for an envelope that comes after a later one of its publisher on its channel. */
export const STALE = -1

/** The last envelope seen of one publisher on one channel. */
interface Last {
  sequence: number
  /** Its publish time on the publisher's clock; 0 where none is known (recorded envelopes). */
  publishedAt: number
}

/**
 * Finds envelopes that never arrived. Each publisher numbers its envelopes per channel (u32,
 * wrapping); a receiver keeps the last number seen per publisher and channel, and a jump is a
 * gap: Redis cut this node's subscription at its output-buffer limit, or the link lost them.
 * Per channel: each room has its own.
 */
export class SequenceTracker {
  /** Envelopes that never arrived. */
  lost = 0
  /** Jumps in a sequence: each is one or more lost envelopes in a row. */
  gaps = 0
  /** channel → publisher node id → last envelope seen. By channel first: a room's channel is forgotten at once when this node leaves it. */
  readonly #last = new Map<string, Map<string, Last>>()

  /**
   * Notes an envelope's number.
   * @param publishedAt its publish time, when known: an envelope whose number went back is then
   * told apart as one that comes after a later one (`STALE`) or as a sequence that started again
   * @returns how many envelopes of this publisher and channel are missing just before it, or
   * `STALE` for one that comes after a later one (and is not noted)
   */
  see (publisher: string, channel: string, sequence: number, publishedAt = 0): number {
    let publishers = this.#last.get(channel)
    if (publishers === undefined) {
      publishers = new Map()
      this.#last.set(channel, publishers)
    }
    const last = publishers.get(publisher)
    if (last === undefined) {
      publishers.set(publisher, { sequence, publishedAt })
      return 0
    }
    const missing = ((sequence - last.sequence) >>> 0) - 1
    const wentBack = missing < 0 || missing >= HALF_RANGE
    // A number that went back on an envelope published no later than the last one seen: it was
    // held up on its way (a command that ioredis sent again once a failed-over shard answered)
    // and the ones after it are out already. Delivering it would break the publisher's order.
    if (wentBack && publishedAt !== 0 && publishedAt <= last.publishedAt) return STALE
    last.sequence = sequence
    last.publishedAt = publishedAt
    // 0: the next one. Below 0 or a jump of half the range, published later: not a gap but a
    // sequence that went back (a publisher that restarted under the same id, or forgot an idle
    // channel's counter), counted from here on.
    if (missing === 0 || wentBack) return 0
    this.lost += missing
    this.gaps++
    return missing
  }

  /** Publishers tracked now, over all channels. */
  get size (): number {
    return this.publishers().length
  }

  /** Ids of the publishers tracked now. */
  publishers (): string[] {
    const ids = new Set<string>()
    for (const publishers of this.#last.values()) {
      for (const id of publishers.keys()) ids.add(id)
    }
    return [...ids]
  }

  /** Stops tracking a publisher (its lease is gone: it is not coming back under this id). */
  forget (publisher: string): void {
    for (const [channel, publishers] of this.#last) {
      if (publishers.delete(publisher) && publishers.size === 0) this.#last.delete(channel)
    }
  }

  /** Stops tracking a channel this node unsubscribed from: what comes on it later starts a new sequence. */
  forgetChannel (channel: string): void {
    this.#last.delete(channel)
  }
}

/**
 * Logs lost envelopes once per episode rather than once per gap: a node that falls behind loses
 * a run of envelopes from every publisher at once, and one warning says it all.
 */
export class GapReporter {
  readonly #log: FastifyBaseLogger
  /** Lost envelopes per publisher in the episode under way. */
  #pending = new Map<string, number>()
  #timer: NodeJS.Timeout | undefined
  #lastReportAt = Number.NEGATIVE_INFINITY

  constructor (log: FastifyBaseLogger) {
    this.#log = log
  }

  /** Adds a gap to the episode under way, or starts one. */
  note (publisher: string, lost: number): void {
    this.#pending.set(publisher, (this.#pending.get(publisher) ?? 0) + lost)
    if (this.#timer !== undefined) return
    const delay = Math.max(EPISODE, this.#lastReportAt + MIN_REPORT_INTERVAL - Date.now())
    this.#timer = setTimeout(() => this.report(), delay).unref()
  }

  /** Logs the episode under way, if any (at its end, or at close so that no loss goes unsaid). */
  report (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#pending.size === 0) return
    const publishers = Object.fromEntries(this.#pending)
    this.#pending = new Map()
    this.#lastReportAt = Date.now()
    let lost = 0
    for (const count of Object.values(publishers)) lost += count
    const ids = Object.keys(publishers)
    const from = ids.length === 1 ? `node ${ids[0] as string}` : `${ids.length} nodes`
    this.#log.warn({ lost, publishers },
      `fastify-ws-hub redis: ${lost} envelopes from ${from} never arrived: this node fell behind and Redis cut its subscription (client-output-buffer-limit pubsub), or the link lost them`)
  }
}
