import { createHash, randomBytes } from 'node:crypto'
import type { Client } from '../client.ts'
import { CloseCode } from '../constants.ts'
import type { HubCore } from '../hub-core.ts'
import type { EncodedMessage } from '../message.ts'
import { addressedTo, replayOrder, type MissedStream } from './replay.ts'
import { ALL_STREAM, clientStream, roomStream, type HistoryEntry, type RecordedEnvelope, type RecoveryStore, type StreamPosition } from './store.ts'
import { encodeSession, withPosition, type ResumeRequest } from './wire.ts'

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

/** The digest of a client's params: a session resumes only for the same params (`onUpgrade` ran again). */
export function paramsDigest (params: object): string {
  return digest(JSON.stringify(params))
}

function newToken (): string {
  return randomBytes(24).toString('base64url')
}

/** An event payload with its position in a stream, as recovering clients get it. */
function positioned (payload: Buffer, stream: string, epoch: string, offset: number): EncodedMessage {
  return { payload: withPosition(payload, stream, epoch, offset), binary: false }
}

/**
 * Writes the messages that arrived while the session was set up, skipping those the history
 * already gave (at or before each stream's top), and makes the client live.
 */
function flushPending (core: HubCore, client: Client, session: ClientSession, tops: ReadonlyMap<string, StreamPosition | null>): void {
  const pending = session.pending ?? []
  session.pending = undefined
  const last = new Map(tops)
  for (const envelope of pending) {
    const { stream, epoch, offset } = envelope.position
    const top = last.get(stream)
    if (top !== undefined && top !== null && top.epoch === epoch) {
      if (offset <= top.offset) continue
      // Some did not arrive between the history's end and this one: the position must not jump them.
      if (offset > top.offset + 1) {
        client.close(CloseCode.tryAgainLater, 'missed events: resume to catch up')
        return
      }
    }
    last.set(stream, { epoch, offset })
    if (!core.writeRecorded(client, positioned(envelope.payload, stream, epoch, offset))) return
  }
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
    { stream: ALL_STREAM, after: request.positions.get(ALL_STREAM) ?? claimed.all },
    ...rooms.map(room => ({ stream: roomStream(room), after: request.positions.get(roomStream(room)) ?? claimed.rooms[room] ?? null })),
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
  const tops = new Map<string, StreamPosition | null>()
  let missed: MissedStream[] = []
  return {
    async prepare (client: Client): Promise<void> {
      const session: ClientSession = { tokenDigest: digest(claimed.token), recovered: true, pending: [] }
      client._session = session
      await Promise.all(claimed.rooms.map(room => core.join(client, room)))
      const rest = await Promise.all(claimed.reads.map(first => store.read(first.stream, first.top ?? first.after)))
      missed = claimed.reads.map((first, index) => {
        const read = rest[index] as Awaited<ReturnType<RecoveryStore['read']>>
        if (!read.ok) throw new Error(`the history of ${first.stream} changed during the resume (${read.reason})`)
        const top = read.top ?? first.top
        tops.set(first.stream, top)
        const entries = [...first.entries, ...read.entries].filter(entry => addressedTo(entry, client.id, client.rooms))
        return { stream: first.stream, epoch: top?.epoch ?? '', entries }
      })
    },
    greet (client: Client): void {
      const session = client._session as ClientSession
      core.writeMessage(client, { payload: encodeSession(client.id, claimed.token, true), binary: false })
      for (const { stream, epoch, entry } of replayOrder(missed)) {
        if (!core.writeRecorded(client, positioned(entry.envelope.payload, stream, epoch, entry.offset))) return
      }
      missed = []
      flushPending(core, client, session, tops)
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
  const tops = new Map<string, StreamPosition | null>()
  /** What arrived while the session was being set up, when setting it up failed. */
  let orphans: readonly RecordedEnvelope[] = []
  return {
    async prepare (client: Client): Promise<void> {
      const session: ClientSession = { tokenDigest: digest(token), recovered: false, pending: [] }
      client._session = session
      try {
        const all = await store.top(ALL_STREAM)
        tops.set(ALL_STREAM, all)
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
      core.writeMessage(client, { payload: encodeSession(client.id, token, false), binary: false })
      flushPending(core, client, session, tops)
    }
  }
}
