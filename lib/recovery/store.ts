import type { HubEnvelope } from '../adapters/adapter.ts'

// What an adapter keeps for session recovery (the hub's `recovery` option): per-stream history with
// offsets and epochs, and session records. A stream is the audience of a message:
//   '*'          broadcasts to every client
//   'r:<room>'   broadcasts to a room
//   'c:<id>'     events sent to one client (recorded only while that client has a session)
// Offsets grow by one per message of a stream, from 1; the epoch names one life of a stream's
// history and changes when that history is lost (a Redis restarted empty, a stream expired), so
// that an offset of an earlier life is never taken for one of this life.

/** The stream of a broadcast to everyone. */
export const ALL_STREAM = '*'

/** The stream of a room's broadcasts. */
export function roomStream (room: string): string {
  return `r:${room}`
}

/** The stream of the events sent to one client. */
export function clientStream (clientId: string): string {
  return `c:${clientId}`
}

/** A place in a stream: the last offset seen, in the life (epoch) it belongs to. */
export interface StreamPosition {
  readonly epoch: string
  readonly offset: number
}

/** Where a recorded message sits, as carried with it to the nodes that deliver it. */
export interface RecordedPosition extends StreamPosition {
  /** The stream it was recorded in (`*`, `r:<room>` or `c:<id>`). */
  readonly stream: string
}

/** Who published a recorded message and when: what orders a replay across streams. */
export interface Origin {
  /** Node id of the publisher. */
  readonly node: string
  /** The publisher's count of its recorded publishes, over all streams: its send order. */
  readonly ordinal: number
  /** Publish time, ms since the epoch, by the publisher's clock. */
  readonly publishedAt: number
}

/** An envelope that was recorded in a stream's history, as it is delivered live. */
export type RecordedEnvelope = HubEnvelope & { readonly position: RecordedPosition, readonly origin: Origin }

/** One message read back from a stream's history. */
export interface HistoryEntry {
  readonly offset: number
  /** As it was recorded: for one room's copy of a broadcast to several rooms, `via` is that room. */
  readonly envelope: HubEnvelope
  readonly origin: Origin
}

/** What a read of a stream's history gives. */
export type HistoryRead =
  /** Every message after the position, in offset order (none when nothing was missed). */
  | { readonly ok: true, readonly entries: readonly HistoryEntry[], readonly top: StreamPosition | null }
  /** The messages after the position cannot all be had: another epoch, trimmed, or more than the limit. */
  | { readonly ok: false, readonly reason: 'epoch' | 'trimmed' | 'limit' }

/** A session as the store keeps it between connections. */
export interface SessionRecord {
  /** Digest of the secret that resumes it; replaced at each resume, so that a token resumes once. */
  readonly token: string
  /** Digest of the client's params, so that a session resumes only for the same params. */
  readonly params: string
  /** Position of the `*` stream when the session began (null: no broadcast to everyone yet). */
  readonly all: StreamPosition | null
  /** The session's rooms, each with the room stream's position when it was joined. */
  readonly rooms: Readonly<Record<string, StreamPosition | null>>
}

/** Bounds of history and sessions, from the hub's `recovery` option. */
export interface RecoveryLimits {
  /** Ms a session outlives its connection. */
  readonly maxDisconnection: number
  /** Messages kept per stream. */
  readonly maxMessages: number
}

/**
 * The history and session store of an adapter that supports recovery. Implementations: the
 * memory adapter (in-process) and the Redis adapter (Redis Streams, on the shard of each room).
 */
export interface RecoveryStore {
  /** Sets the bounds; called once, before `start`, by a hub with recovery on. */
  configure (limits: RecoveryLimits): void
  /**
   * Records an envelope in its stream(s) and delivers it to every node that wants it, this one
   * included, through `HubNode.deliver`, with its position and origin (`RecordedEnvelope`). A
   * broadcast to several rooms is recorded once per room (each copy with `via`). A `send` to a
   * client without a session is delivered without being recorded (and without a position).
   * Delivery of one stream's messages is in offset order at every node.
   * @returns false when it could not be handed over (link down): nothing was recorded nor delivered
   */
  record (envelope: HubEnvelope): boolean
  /** The last position of a stream now; null when the stream has no history (never published, or gone). */
  top (stream: string): Promise<StreamPosition | null>
  /**
   * The messages of a stream after a position, at most `maxMessages`.
   * @param after null: from the stream's first message, whatever its epoch (the stream did not exist when the reader began)
   */
  read (stream: string, after: StreamPosition | null): Promise<HistoryRead>
  /** Creates a session record (its client stream starts empty), alive for `maxDisconnection` past the connection. */
  createSession (clientId: string, record: SessionRecord): Promise<void>
  /** Reads a session record without changing it; undefined when there is none (expired, unknown). */
  readSession (clientId: string): Promise<SessionRecord | undefined>
  /**
   * Replaces the token if it is still `token` (atomically: of two resumes with one token, one wins).
   * @returns the record as it was, or undefined when the token did not match or there is no record
   */
  claimSession (clientId: string, token: string, newToken: string): Promise<SessionRecord | undefined>
  /** Adds a room (and its stream's position at the join) to a session. */
  joinSession (clientId: string, room: string, position: StreamPosition | null): void
  /** Removes a room from a session. */
  leaveSession (clientId: string, room: string): void
  /** The connection of these sessions is open: keeps them (and their clients' history) alive. */
  touchSessions (clientIds: readonly string[], rooms: readonly string[]): void
  /** The connection ended: the session lives `maxDisconnection` more, if its token is still `token`. */
  endSession (clientId: string, token: string): void
  /**
   * Resolves once every message published before the call has reached this node (Redis: a PING
   * on the subscriber connection, answered after what Redis queued for it before). A resume calls
   * it after reading the history, so that what the history gave and what comes live meet in one
   * list, in every publisher's order. Optional: a store whose deliveries are synchronous needs none.
   */
  sync? (): Promise<void>
  /**
   * Asks the node that holds the client, if any, to let it go when its socket is dead (a ping
   * unanswered: a half-open connection). Resolves true once no node holds the client, false when
   * one still does after `timeout` ms (its socket answered: the session is in use).
   */
  release (clientId: string, timeout: number): Promise<boolean>
}
