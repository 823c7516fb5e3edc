import { randomBytes } from 'node:crypto'
import type { HubEnvelope, HubNode } from '../adapters/adapter.ts'
import {
  ALL_STREAM, clientStream, roomStream,
  type HistoryEntry, type HistoryRead, type RecordedEnvelope, type RecoveryLimits, type RecoveryStore, type SessionRecord, type StreamPosition
} from './store.ts'

/** One stream's history: its life's epoch, its last offset, and the messages kept (oldest first). */
interface History {
  readonly epoch: string
  offset: number
  readonly entries: HistoryEntry[]
  /** Last publish, or last time a node with members said the room is alive (`touchSessions`). */
  usedAt: number
}

/** A session and its own stream (events sent to its client). */
interface Session {
  token: string
  readonly params: string
  readonly all: StreamPosition | null
  readonly rooms: Map<string, StreamPosition | null>
  readonly history: History
  expiresAt: number
}

/** How often `release` looks again whether the holder let the client go. */
const RELEASE_POLL = 20

function newEpoch (): string {
  return randomBytes(6).toString('base64url')
}

/**
 * History and sessions of the nodes of one memory bus, kept in the process: what recovery needs
 * on one process (or several hubs in one process), with the same contract as the Redis store.
 * A process that exits loses it all, sessions included, so no client is told it recovered
 * what was lost with it.
 */
export class MemoryRecoveryHistory {
  readonly #nodes: ReadonlySet<HubNode>
  readonly #streams = new Map<string, History>()
  readonly #sessions = new Map<string, Session>()
  /** Each publishing node's count of recorded publishes: the `ordinal` of its origins. */
  readonly #ordinals = new WeakMap<HubNode, number>()
  #limits: RecoveryLimits = { maxDisconnection: 120_000, maxMessages: 10_000 }
  #created = 0
  #appended = 0

  constructor (nodes: ReadonlySet<HubNode>) {
    this.#nodes = nodes
  }

  /** The store as one node of the bus uses it. */
  forNode (self: () => HubNode | undefined): RecoveryStore {
    return {
      configure: limits => { this.#limits = limits },
      record: envelope => {
        const node = self()
        if (node === undefined) return false
        this.#record(node, envelope)
        return true
      },
      top: async stream => this.#top(stream),
      read: async (stream, after) => this.#read(stream, after),
      createSession: async (clientId, record) => this.#createSession(clientId, record),
      readSession: async clientId => this.#recordOf(clientId),
      claimSession: async (clientId, token, newToken) => this.#claim(clientId, token, newToken),
      joinSession: (clientId, room, position) => { this.#live(clientId)?.rooms.set(room, position) },
      leaveSession: (clientId, room) => { this.#live(clientId)?.rooms.delete(room) },
      touchSessions: (clientIds, rooms) => {
        const now = Date.now()
        const until = now + 2 * this.#limits.maxDisconnection
        for (const id of clientIds) {
          const session = this.#live(id)
          if (session !== undefined) session.expiresAt = until
        }
        for (const room of rooms) {
          const history = this.#streams.get(roomStream(room))
          if (history !== undefined) history.usedAt = now
        }
      },
      endSession: (clientId, token) => {
        const session = this.#live(clientId)
        if (session !== undefined && session.token === token) session.expiresAt = Date.now() + this.#limits.maxDisconnection
      },
      release: async (clientId, timeout) => this.#release(clientId, timeout)
    }
  }

  /** A session that has not expired (an expired one is forgotten on the way). */
  #live (clientId: string): Session | undefined {
    const session = this.#sessions.get(clientId)
    if (session === undefined) return undefined
    if (session.expiresAt > Date.now()) return session
    this.#sessions.delete(clientId)
    return undefined
  }

  #recordOf (clientId: string): SessionRecord | undefined {
    const session = this.#live(clientId)
    if (session === undefined) return undefined
    return { token: session.token, params: session.params, all: session.all, rooms: Object.fromEntries(session.rooms) }
  }

  #createSession (clientId: string, record: SessionRecord): void {
    // Expired sessions are forgotten when met; a sweep now and then forgets those never met again.
    if (++this.#created % 1024 === 0) {
      for (const id of [...this.#sessions.keys()]) this.#live(id)
    }
    this.#sessions.set(clientId, {
      token: record.token,
      params: record.params,
      all: record.all,
      rooms: new Map(Object.entries(record.rooms)),
      history: { epoch: newEpoch(), offset: 0, entries: [], usedAt: Date.now() },
      expiresAt: Date.now() + 2 * this.#limits.maxDisconnection
    })
  }

  #claim (clientId: string, token: string, newToken: string): SessionRecord | undefined {
    const record = this.#recordOf(clientId)
    const session = this.#sessions.get(clientId)
    if (record === undefined || session === undefined || session.token !== token) return undefined
    session.token = newToken
    return record
  }

  #history (stream: string): History | undefined {
    if (stream.startsWith('c:')) return this.#live(stream.slice(2))?.history
    return this.#streams.get(stream)
  }

  #top (stream: string): StreamPosition | null {
    const history = this.#history(stream)
    return history === undefined ? null : { epoch: history.epoch, offset: history.offset }
  }

  #read (stream: string, after: StreamPosition | null): HistoryRead {
    const history = this.#history(stream)
    if (history === undefined) return after === null ? { ok: true, entries: [], top: null } : { ok: false, reason: 'epoch' }
    const top = { epoch: history.epoch, offset: history.offset }
    // An offset beyond the stream's last is not one this life of the stream gave.
    if (after !== null && (after.epoch !== history.epoch || after.offset > history.offset)) return { ok: false, reason: 'epoch' }
    const from = after?.offset ?? 0
    if (history.offset === from) return { ok: true, entries: [], top }
    if (history.offset - from > this.#limits.maxMessages) return { ok: false, reason: 'limit' }
    this.#trimByAge(history)
    const first = history.entries[0]?.offset
    if (first === undefined || first > from + 1) return { ok: false, reason: 'trimmed' }
    return { ok: true, entries: history.entries.slice(from + 1 - first), top }
  }

  /**
   * Forgets the rooms' streams unused for twice `maxDisconnection` (no publish, no member on any
   * node): no session can want them any more, and a room per user must not stay in memory for
   * ever. A room used again later starts a new epoch.
   */
  #forgetIdleStreams (): void {
    const oldest = Date.now() - 2 * this.#limits.maxDisconnection
    for (const [stream, history] of this.#streams) {
      if (stream !== ALL_STREAM && history.usedAt < oldest) this.#streams.delete(stream)
    }
  }

  /** Drops messages older than any session can want: twice `maxDisconnection`. */
  #trimByAge (history: History): void {
    const oldest = Date.now() - 2 * this.#limits.maxDisconnection
    let drop = 0
    while (drop < history.entries.length && (history.entries[drop] as HistoryEntry).origin.publishedAt < oldest) drop++
    if (drop > 0) history.entries.splice(0, drop)
  }

  #record (publisher: HubNode, envelope: HubEnvelope): void {
    const ordinal = (this.#ordinals.get(publisher) ?? 0) + 1
    this.#ordinals.set(publisher, ordinal)
    const origin = { node: publisher.nodeId, ordinal, publishedAt: Date.now() }
    if (envelope.kind === 'send') {
      const session = this.#live(envelope.to)
      if (session === undefined) {
        // No session: nothing to recover, so nothing recorded; delivered as a plain message.
        for (const node of this.#nodes) node.deliver(envelope)
        return
      }
      this.#append(clientStream(envelope.to), session.history, envelope, origin)
      return
    }
    const rooms = envelope.rooms
    if (rooms === undefined) {
      this.#append(ALL_STREAM, this.#streamOf(ALL_STREAM), envelope, origin)
      return
    }
    for (const room of rooms) {
      const copy = rooms.length > 1 ? { ...envelope, via: room } : envelope
      this.#append(roomStream(room), this.#streamOf(roomStream(room)), copy, origin)
    }
  }

  #streamOf (stream: string): History {
    let history = this.#streams.get(stream)
    if (history === undefined) {
      history = { epoch: newEpoch(), offset: 0, entries: [], usedAt: Date.now() }
      this.#streams.set(stream, history)
    }
    return history
  }

  #append (stream: string, history: History, envelope: HubEnvelope, origin: HistoryEntry['origin']): void {
    const offset = ++history.offset
    history.entries.push({ offset, envelope, origin })
    history.usedAt = origin.publishedAt
    // Trimmed in slices, not one shift per append (each shift moves every entry): at most an
    // eighth more than maxMessages is kept, and a read never gives more than maxMessages.
    const excess = history.entries.length - this.#limits.maxMessages
    if (excess > Math.max(1, this.#limits.maxMessages >> 3)) history.entries.splice(0, excess)
    this.#trimByAge(history)
    if (++this.#appended % 1024 === 0) this.#forgetIdleStreams()
    const recorded = { ...envelope, position: { stream, epoch: history.epoch, offset }, origin } as RecordedEnvelope
    for (const node of this.#nodes) node.deliver(recorded)
  }

  async #release (clientId: string, timeout: number): Promise<boolean> {
    const deadline = Date.now() + timeout
    for (const node of this.#nodes) node.release(clientId)
    while ([...this.#nodes].some(node => node.holds(clientId))) {
      if (Date.now() >= deadline) return false
      await new Promise(resolve => setTimeout(resolve, RELEASE_POLL))
    }
    return true
  }
}
