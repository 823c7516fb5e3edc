import type { Client } from './client.ts'
import { CloseCode } from './constants.ts'
import { framePing } from './frame.ts'
import type { HubCore } from './hub-core.ts'

/** Clients checked per slice of a sweep; slices are spread over event-loop turns. */
const SLICE = 256
/** A ping sweep spreads its slices over this share of the interval, so pongs come back in small waves. */
const PING_SPREAD = 0.5
/** The sweep runs at least this often, so deadlines are kept to about a second. */
const MAX_PERIOD = 1_000
const MIN_PERIOD = 5
const OPEN = 1

/**
 * Keeps every client's liveness on ONE timer: heartbeat pings, unanswered-ping failures, the idle
 * deadline (`readTimeout`), the slow-consumer deadline (`writeTimeout`) and the end of close
 * handshakes that never finish. A sweep walks the clients in slices of 256; a sweep that pings
 * spreads its slices over half a period (so the pongs come back in small waves, not one flood),
 * the others run them on consecutive turns. Even 10k clients never hold the event loop for long.
 *
 * The timer ticks every period, but a tick walks the clients only when a walk can find something
 * to do: a ping is due, the oldest silence seen by the last walk reaches `readTimeout`, the hub
 * wrote or dropped a message or began a close since the last walk, or that walk left a client
 * slow or closing. An idle node thus walks its clients once per ping instead of every second.
 * Writes that bypass the hub (`client.socket.send`) are not seen that way: a walk at least every
 * `writeTimeout / 4` still finds those slow consumers within 1.25 x `writeTimeout`.
 */
export class Heartbeat {
  readonly #core: HubCore
  readonly #period: number
  readonly #pingFrame: Buffer | undefined
  #timer: NodeJS.Timeout | undefined
  #immediate: NodeJS.Immediate | undefined
  #nextPingAt = 0
  #sweeping: Iterator<Client> | undefined
  #sweepNow = 0
  #sweepPings = false
  #spacing = 0
  #spreadTimer: NodeJS.Timeout | undefined
  /** A walk runs at least this often, whatever else says none is needed. */
  readonly #fullEvery: number
  /** When the last walk began, and the hub's write and close counts then. */
  #walkedAt = 0
  #writesSeen = 0
  #closesSeen = 0
  /** Clients the last walk left slow or closing: while there are any, every tick walks. */
  #unsettled = 0
  /** The earliest a client can reach `readTimeout`, from the oldest `_lastSeen` of the last walk. */
  #idleDue = 0
  /** What the walk in progress has seen so far. */
  #walkUnsettled = 0
  #walkOldestSeen = 0

  constructor (core: HubCore) {
    this.#core = core
    const { heartbeat, readTimeout, writeTimeout } = core.options
    let period = Math.min(MAX_PERIOD, writeTimeout / 4)
    if (heartbeat !== false) period = Math.min(period, heartbeat.interval)
    if (readTimeout > 0) period = Math.min(period, readTimeout / 4)
    this.#period = Math.max(MIN_PERIOD, period)
    this.#fullEvery = Math.max(this.#period, writeTimeout / 4)
    this.#pingFrame = heartbeat === false ? undefined : framePing(heartbeat.payload)
  }

  /** Starts the timer (unref'd: it never keeps the process alive). */
  start (): void {
    const heartbeat = this.#core.options.heartbeat
    if (heartbeat !== false) this.#nextPingAt = Date.now() + heartbeat.interval
    this.#timer = setInterval(() => this.#tick(), this.#period)
    this.#timer.unref()
  }

  /** Stops the timer and any sweep in progress. */
  stop (): void {
    clearInterval(this.#timer)
    if (this.#immediate !== undefined) clearImmediate(this.#immediate)
    clearTimeout(this.#spreadTimer)
    this.#timer = undefined
    this.#immediate = undefined
    this.#sweeping = undefined
  }

  #tick (): void {
    // A sweep still walking its slices finishes first; this tick's work folds into the next one.
    if (this.#sweeping !== undefined) return
    const now = Date.now()
    const heartbeat = this.#core.options.heartbeat
    this.#sweepPings = heartbeat !== false && now >= this.#nextPingAt
    if (heartbeat !== false && this.#sweepPings) this.#nextPingAt = now + heartbeat.interval
    if (!this.#sweepPings && !this.#walkNeeded(now)) return
    this.#beginWalk(now)
    this.#sweepNow = now
    const slices = Math.ceil(this.#core.clients.size / SLICE)
    this.#spacing = heartbeat !== false && slices > 1 ? Math.floor(this.#period * PING_SPREAD / slices) : 0
    this.#sweeping = this.#core.clients.values()
    this.#slice()
  }

  /** Whether anything may have come due since the last walk (see the class comment). */
  #walkNeeded (now: number): boolean {
    const core = this.#core
    return this.#unsettled > 0 ||
      now >= this.#idleDue ||
      now - this.#walkedAt >= this.#fullEvery ||
      core.counters.messagesOut + core.counters.dropped !== this.#writesSeen ||
      core.closesBegun !== this.#closesSeen
  }

  /** Notes what the walk starts from: whatever happens during it makes the next tick walk again. */
  #beginWalk (now: number): void {
    const core = this.#core
    this.#walkedAt = now
    this.#writesSeen = core.counters.messagesOut + core.counters.dropped
    this.#closesSeen = core.closesBegun
    this.#walkUnsettled = 0
    // A client that opens after this has been seen no earlier than now.
    this.#walkOldestSeen = now
  }

  /** The walk reached its last client: what it saw decides when the next one is needed. */
  #endWalk (): void {
    this.#sweeping = undefined
    this.#unsettled = this.#walkUnsettled
    const readTimeout = this.#core.options.readTimeout
    // Every _lastSeen only grows, and a new client starts at its opening: none is idle before this.
    this.#idleDue = readTimeout > 0 ? this.#walkOldestSeen + readTimeout : Infinity
  }

  #slice (): void {
    this.#immediate = undefined
    const clients = this.#sweeping
    if (clients === undefined) return
    for (let checked = 0; checked < SLICE; checked++) {
      const next = clients.next()
      if (next.done === true) {
        this.#endWalk()
        return
      }
      const client = next.value
      this.#check(client)
      if (client._state !== 'open') {
        if (client._state === 'closing') this.#walkUnsettled++
      } else {
        if (client._slowSince !== 0) this.#walkUnsettled++
        if (client._lastSeen < this.#walkOldestSeen) this.#walkOldestSeen = client._lastSeen
      }
    }
    if (this.#sweepPings && this.#spacing > 0) {
      this.#spreadTimer = setTimeout(() => this.#slice(), this.#spacing)
      this.#spreadTimer.unref()
    } else {
      this.#immediate = setImmediate(() => this.#slice())
    }
  }

  #check (client: Client): void {
    const core = this.#core
    const { heartbeat, readTimeout, writeTimeout, maxBufferedBytes, shutdownTimeout } = core.options
    const now = this.#sweepNow
    if (client._state !== 'open') {
      // A close handshake the peer never answers must not hold the socket for ws's 30 s.
      if (client._state === 'closing' && now - client._closingSince >= shutdownTimeout) client._terminate()
      return
    }
    // The peer began the close: ws answered it and ended the stream; the close event is on its way.
    if (client.socket.readyState !== OPEN) return
    if (client._busy) {
      // The socket is paused while a handler runs: unread pongs are the server's delay, not the peer's.
      client._lastSeen = now
      client._awaitingPong = false
    } else if (readTimeout > 0 && now - client._lastSeen >= readTimeout) {
      core.counters.idleCloses++
      client.close(CloseCode.goingAway, 'idle')
      return
    }
    if (client.socket.bufferedAmount > maxBufferedBytes) {
      if (client._slowSince === 0) {
        client._slowSince = now
      } else if (now - client._slowSince >= writeTimeout) {
        core.counters.slowConsumerCloses++
        client.close(CloseCode.policyViolation, 'slow consumer')
        return
      }
    } else {
      client._slowSince = 0
    }
    if (!this.#sweepPings || heartbeat === false) return
    if (client._awaitingPong && ++client._heartbeatFailures >= heartbeat.maxFailures) {
      core.counters.heartbeatTimeouts++
      client._terminate()
      return
    }
    client._awaitingPong = true
    if (client._raw !== undefined) {
      core.fanOut.write(client, this.#pingFrame as Buffer)
    } else {
      client.socket.ping(heartbeat.payload)
    }
  }
}
