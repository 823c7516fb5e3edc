import { createHash, randomBytes } from 'node:crypto'
import type { Client } from '../client.ts'
import type { HubCore } from '../hub-core.ts'
import type { EncodedMessage } from '../message.ts'
import { addressedTo, replayOrder, type MissedStream } from './replay.ts'
import { ALL_STREAM, clientStream, roomStream, type HistoryEntry, type RecordedEnvelope, type RecoveryStore, type StreamPosition } from './store.ts'
import { encodePosition, encodeSession, withPosition, type ResumeRequest } from './wire.ts'

/**
 * Ms a resume waits for the node that still holds the session (a half-open socket) to let it go:
 * that node pings the socket and gives it `RELEASE_PROBE` ms to answer.
 */
export const RELEASE_PROBE = 1000
const RELEASE_TIMEOUT = RELEASE_PROBE + 1500

/** A client's session, while it is open. */
export interface ClientSession {
  /** Digest of the token the client holds now: the store keeps digests, never tokens. */
  readonly tokenDigest: string
  /** Whether this connection resumed an earlier one with everything it missed. */
  readonly recovered: boolean
  /**
   * Recorded messages delivered while the session was being set up (before the handshake and
   * the replay), written after them; undefined once the client is live.
   */
  pending: RecordedEnvelope[] | undefined
  /**
   * Per stream, the last offset the greeting gave (replayed, or passed with `$pos`): a node whose
   * subscription runs behind (a backlog) can still bring events recorded before the history was
   * read; those at or below it are not given again. A stream leaves it with its first event past it.
   */
  floors?: Map<string, StreamPosition>
}

/** What `openClient` runs for a session: `prepare` before the handshake, `greet` right after it. */
export interface SessionOpening {
  /** Sets the session up: the client is in the hub and reachable; nothing has been written to it. */
  prepare (client: Client): Promise<void>
  /** Writes the `$session` frame, the missed messages, and what arrived meanwhile. */
  greet (client: Client): void
}

/** A resume that passed every check: the session is this connection's now. */
interface Claimed {
  readonly id: string
  readonly token: string
  readonly rooms: readonly string[]
  /** The first read of each stream, made before the client subscribed. */
  readonly reads: ReadonlyArray<{ readonly stream: string, readonly after: StreamPosition | null, readonly entries: readonly HistoryEntry[], readonly top: StreamPosition | null }>
}

function digest (text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}

/** JSON with every object's keys sorted: the same params give the same text whatever order `onUpgrade` built them in. */
function canonicalJson (value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return item
    return Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  })
}

/**
 * The digest of a client's params: a session resumes only for the same params (`onUpgrade` ran
 * again). Params that JSON cannot hold (a BigInt, a cycle) get a digest of their own each time:
 * such a session can never be resumed, but the client opens.
 */
export function paramsDigest (params: object): string {
  try {
    return digest(canonicalJson(params))
  } catch {
    return newToken()
  }
}

function newToken (): string {
  return randomBytes(24).toString('base64url')
}

/** An event payload with its position in a stream, as recovering clients get it. */
function positioned (payload: Buffer, stream: string, epoch: string, offset: number): EncodedMessage {
  return { payload: withPosition(payload, stream, epoch, offset), binary: false }
}

/** A stream as the greeting writes it: where it stands and what the client is still owed. */
interface StreamState {
  readonly stream: string
  /** Its history's last position as read (null: no history when it was read). */
  readonly top: StreamPosition | null
  /** What the history gave after the client's position, in offset order. */
  readonly entries: readonly HistoryEntry[]
}

/**
 * Writes the `$session` frame, then what the client is owed, and makes it live: per stream, the
 * history's entries and, after them, what arrived live meanwhile (`pending`) past the history's
 * top. Events for the client go in replay order (each stream in offset order, each publisher in
 * its order); entries that are not for it (another room's copy of a broadcast to several rooms)
 * only move its position: a `$pos` frame ends each stream whose last entries it did not get, so
 * that a later resume does not give them again. A gap in what arrived live (this node missed some
 * events) closes the client with 1013 after what comes before the gap: it resumes from there.
 */
function greetSession (core: HubCore, client: Client, session: ClientSession, token: string, states: readonly StreamState[]): void {
  core.writeMessage(client, { payload: encodeSession(client.id, token, session.recovered, states.map(state => state.stream)), binary: false })
  if (session.recovered) core.counters.sessionsResumed++
  else core.counters.sessionsNew++
  const pending = session.pending ?? []
  session.pending = undefined
  // Per stream: its epoch, what is owed, and the last offset given so far (the history's top at first).
  const owed = new Map<string, { epoch: string | undefined, entries: HistoryEntry[], last: number }>()
  for (const { stream, top, entries } of states) owed.set(stream, { epoch: top?.epoch, entries: [...entries], last: entries.at(-1)?.offset ?? top?.offset ?? 0 })
  let gap = false
  for (const envelope of pending) {
    const { stream, epoch, offset } = envelope.position
    let state = owed.get(stream)
    if (state === undefined) owed.set(stream, state = { epoch, entries: [], last: 0 })
    const last = state.last
    if (state.epoch === epoch && offset <= last) continue
    // Another epoch, or offsets skipped: events this node never got.
    if ((state.epoch !== undefined && state.epoch !== epoch) || offset !== last + 1) {
      gap = true
      continue
    }
    state.epoch = epoch
    state.last = offset
    state.entries.push({ offset, envelope, origin: envelope.origin })
  }
  const missed: MissedStream[] = []
  for (const [stream, { epoch, entries }] of owed) {
    missed.push({ stream, epoch: epoch ?? '', entries: entries.filter(entry => addressedTo(entry, client.id, client.rooms)) })
  }
  const written = new Map<string, number>()
  for (const { stream, epoch, entry } of replayOrder(missed)) {
    if (!core.writeRecorded(client, positioned(entry.envelope.payload, stream, epoch, entry.offset))) return
    written.set(stream, entry.offset)
  }
  const floors = new Map<string, StreamPosition>()
  for (const [stream, { epoch, entries, last }] of owed) {
    if (epoch === undefined) continue
    floors.set(stream, { epoch, offset: last })
    const end = entries.at(-1)?.offset
    if (end !== undefined && end !== written.get(stream)) {
      if (!core.writeRecorded(client, { payload: encodePosition(stream, epoch, end), binary: false })) return
    }
  }
  session.floors = floors
  if (gap) core.closeToResume(client, 'missed events: resume to catch up')
}

/**
 * Where a stream's replay starts: the client's position, but never before the session's own
 * start in that stream (its join of the room, its start for `*`), so that a client cannot read
 * what was sent before it was there. A client's position in another epoch than the recorded one is
 * taken as it is: either the stream's history was lost since (then the whole new epoch is after
 * the join) or it is not the stream's epoch (then the read refuses it).
 */
function startOf (client: StreamPosition | undefined, recorded: StreamPosition | null): StreamPosition | null {
  if (client === undefined) return recorded
  if (recorded !== null && recorded.epoch === client.epoch && recorded.offset > client.offset) return recorded
  return client
}

/**
 * Checks a resume request and takes the session over: the token and params must match, the node
 * that still holds it (if any) must let it go, and every stream's history must still hold what
 * the client missed. Any failure gives undefined: the client gets a fresh session.
 */
export async function claimSession (core: HubCore, store: RecoveryStore, request: ResumeRequest, params: string): Promise<Claimed | undefined> {
  const tokenDigest = digest(request.token)
  const record = await store.readSession(request.id)
  if (record === undefined || record.token !== tokenDigest || record.params !== params) return undefined
  if (!await store.release(request.id, RELEASE_TIMEOUT)) return undefined
  const token = newToken()
  const claimed = await store.claimSession(request.id, tokenDigest, digest(token))
  if (claimed === undefined) return undefined
  // It may have had seconds left: alive again while this connection is open.
  store.touchSessions([request.id], [])
  const rooms = Object.keys(claimed.rooms)
  const plan = [
    { stream: ALL_STREAM, after: startOf(request.positions.get(ALL_STREAM), claimed.all) },
    ...rooms.map(room => ({ stream: roomStream(room), after: startOf(request.positions.get(roomStream(room)), claimed.rooms[room] ?? null) })),
    { stream: clientStream(request.id), after: request.positions.get(clientStream(request.id)) ?? null }
  ]
  const reads = await Promise.all(plan.map(({ stream, after }) => store.read(stream, after)))
  const results = []
  for (const [index, read] of reads.entries()) {
    if (!read.ok) {
      core.log.debug({ clientId: request.id, reason: read.reason }, 'fastify-ws-hub: session not recovered')
      return undefined
    }
    const { stream, after } = plan[index] as (typeof plan)[number]
    results.push({ stream, after, entries: read.entries, top: read.top })
  }
  return { id: request.id, token, rooms, reads: results }
}

/**
 * A resumed session: the client rejoins its rooms, then reads what was published since the first
 * read (it is subscribed now, so whatever comes later arrives live and waits in `pending`); the
 * greeting writes the missed messages in replay order, then the pending ones not already given.
 */
export function resumedSession (core: HubCore, store: RecoveryStore, claimed: Claimed): SessionOpening {
  let states: StreamState[] = []
  return {
    async prepare (client: Client): Promise<void> {
      const session: ClientSession = { tokenDigest: digest(claimed.token), recovered: true, pending: [] }
      client._session = session
      await Promise.all(claimed.rooms.map(room => core.join(client, room)))
      const rest = await Promise.all(claimed.reads.map(first => store.read(first.stream, first.top ?? first.after)))
      // What was published before those reads is here now (in `pending`), the late ones too.
      await store.sync?.()
      states = claimed.reads.map((first, index) => {
        const read = rest[index] as Awaited<ReturnType<RecoveryStore['read']>>
        if (!read.ok) throw new Error(`the history of ${first.stream} changed during the resume (${read.reason})`)
        return { stream: first.stream, top: read.top ?? first.top, entries: [...first.entries, ...read.entries] }
      })
    },
    greet (client: Client): void {
      greetSession(core, client, client._session as ClientSession, claimed.token, states)
      states = []
    }
  }
}

/**
 * A fresh session: recorded in the store before the handshake (so that a `sendTo` its id from any
 * node, once it has its handshake, is kept), starting at the `*` stream's position now. When the
 * store cannot be reached the client opens without a session (no `$session` frame: nothing to resume).
 */
export function freshSession (core: HubCore, store: RecoveryStore, params: string): SessionOpening {
  const token = newToken()
  let all: StreamPosition | null = null
  /** What arrived while the session was being set up, when setting it up failed. */
  let orphans: readonly RecordedEnvelope[] = []
  return {
    async prepare (client: Client): Promise<void> {
      const session: ClientSession = { tokenDigest: digest(token), recovered: false, pending: [] }
      client._session = session
      try {
        all = await store.top(ALL_STREAM)
        await store.createSession(client.id, { token: session.tokenDigest, params, all, rooms: {} })
      } catch (error) {
        core.log.warn({ err: error, clientId: client.id }, 'fastify-ws-hub: no session for this client (the history store did not answer); it cannot resume')
        client._session = undefined
        orphans = session.pending ?? []
      }
    },
    greet (client: Client): void {
      const session = client._session
      if (session === undefined) {
        // Still written, as plain events: the client has no positions to keep.
        for (const envelope of orphans) core.writeMessage(client, { payload: envelope.payload, binary: envelope.binary })
        orphans = []
        return
      }
      greetSession(core, client, session, token, [
        { stream: ALL_STREAM, top: all, entries: [] },
        { stream: clientStream(client.id), top: null, entries: [] }
      ])
    }
  }
}
