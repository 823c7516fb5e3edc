import type { StreamPosition } from './store.ts'

// The recovery part of the typed wire format (README "Session recovery"):
//   server → client, right after the handshake: {"type":"$session","data":{"id","token","recovered"}}
//   server → client, every recorded event:      {"type":T,"data":D,"pos":[stream, epoch, offset]}
//   server → client, a position without event:  {"type":"$pos","pos":[stream, epoch, offset]}
//   client → server, first frame of a socket opened with `?_resume=1`:
//     {"type":"$resume","data":{"id","token","positions":{stream: [epoch, offset]}}}

/** The query flag that announces a `$resume` frame as the socket's first. */
export const RESUME_FLAG = '_resume'

/** Longest id, token and epoch a resume frame may hold; anything longer is not one of ours. */
const MAX_TEXT = 128
/** Most positions a resume frame may list: every room of a session, its own stream and `*`. */
export const MAX_POSITIONS = 10_000

/** What a client asks for when it resumes. */
export interface ResumeRequest {
  readonly id: string
  readonly token: string
  /** Last position seen per stream (`*`, `r:<room>`, `c:<id>`). */
  readonly positions: ReadonlyMap<string, StreamPosition>
}

/** Whether an upgrade's URL carries the resume flag (`_resume=1`), read from the raw URL: a route's query schema may strip unknown keys. */
export function wantsResume (rawUrl: string | undefined): boolean {
  if (rawUrl === undefined) return false
  const query = rawUrl.indexOf('?')
  if (query < 0) return false
  return new URLSearchParams(rawUrl.slice(query + 1)).get(RESUME_FLAG) === '1'
}

function isShortText (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_TEXT
}

/**
 * Reads a `$resume` frame.
 * @returns the request, or undefined for anything else (malformed, too big, another type): the client then gets a fresh session
 */
export function parseResume (frame: string): ResumeRequest | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(frame)
  } catch {
    return undefined
  }
  const { type, data } = (parsed ?? {}) as { type?: unknown, data?: unknown }
  if (type !== '$resume' || typeof data !== 'object' || data === null) return undefined
  const { id, token, positions } = data as { id?: unknown, token?: unknown, positions?: unknown }
  if (!isShortText(id) || !isShortText(token)) return undefined
  const result = new Map<string, StreamPosition>()
  if (positions !== undefined) {
    if (typeof positions !== 'object' || positions === null || Array.isArray(positions)) return undefined
    const entries = Object.entries(positions)
    if (entries.length > MAX_POSITIONS) return undefined
    for (const [stream, position] of entries) {
      if (!Array.isArray(position) || position.length !== 2) return undefined
      const [epoch, offset] = position as unknown[]
      if (!isShortText(epoch) || !Number.isSafeInteger(offset) || (offset as number) < 0) return undefined
      result.set(stream, { epoch, offset: offset as number })
    }
  }
  return { id, token, positions: result }
}

/** The `$session` frame's payload; `streams` are the session's, whose positions the client keeps. */
export function encodeSession (id: string, token: string, recovered: boolean, streams: readonly string[]): Buffer {
  return Buffer.from(JSON.stringify({ type: '$session', data: { id, token, recovered, streams } }), 'utf8')
}

/**
 * A `$pos` frame: the client's position in a stream moves on without an event (those at the end
 * of the stream reached it through another room: a broadcast to several rooms).
 */
export function encodePosition (stream: string, epoch: string, offset: number): Buffer {
  return Buffer.from(`{"type":"$pos","pos":[${JSON.stringify(stream)},${JSON.stringify(epoch)},${offset}]}`, 'utf8')
}

/**
 * An event frame with its position: `{"type":T,"data":D}` becomes `{"type":T,"data":D,"pos":[…]}`.
 * Recorded messages are event frames (JSON objects built by the event serialisers), so the
 * position goes in before their closing brace; the payload is not parsed.
 */
export function withPosition (payload: Buffer, stream: string, epoch: string, offset: number): Buffer {
  const tail = Buffer.from(`,"pos":[${JSON.stringify(stream)},${JSON.stringify(epoch)},${offset}]}`, 'utf8')
  return Buffer.concat([payload.subarray(0, payload.length - 1), tail], payload.length - 1 + tail.length)
}
