import sjson from 'secure-json-parse'
import type { EncodedMessage } from '../message.ts'

/**
 * The codes of the error frames a typed route answers with (`{"type":"error","error":{"code"}}`).
 * An exposed handler error may carry a code of the application's own instead of `handler_error`.
 */
export type WireErrorCode =
  | 'invalid_json'
  | 'invalid_message'
  | 'unknown_type'
  | 'invalid_data'
  | 'binary_not_accepted'
  | 'handler_error'

/** A message id: the client's, echoed on the reply or error frame. */
export type MessageId = string | number

/** An incoming frame that is a well-formed message: a type, its data, and an id when it asks for a reply. */
export interface WireMessage {
  readonly type: string
  readonly data: unknown
  readonly id: MessageId | undefined
}

/** An incoming frame that is not a message: what to answer. */
export interface WireFault {
  readonly code: WireErrorCode
  readonly message: string
  readonly id: MessageId | undefined
}

/** The keys a message may hold: nothing else, so that a misspelt `"dat"` is an error, not silently no data. */
const MESSAGE_KEYS = new Set(['type', 'data', 'id'])

/** Longest piece of a client's own text echoed back in an error message. */
const ECHO_LIMIT = 64

/**
 * Fastify's own choice for request bodies: a `__proto__` key, or a `constructor` holding a
 * `prototype`, fails the parse instead of being dropped in silence.
 */
const PARSE_OPTIONS = { protoAction: 'error', constructorAction: 'error' } as const

/** A client's text, quoted and cut short, for an error message. */
export function echo (text: string): string {
  return JSON.stringify(text.length > ECHO_LIMIT ? `${text.slice(0, ECHO_LIMIT)}…` : text)
}

/** Whether a parse result is a fault rather than a message. */
export function isFault (parsed: WireMessage | WireFault): parsed is WireFault {
  return (parsed as WireFault).code !== undefined
}

/**
 * Reads one text frame as a message `{"type", "data", "id"?}`.
 * @returns the message, or the fault to answer (`invalid_json` or `invalid_message`)
 */
export function parseMessage (text: string): WireMessage | WireFault {
  let parsed: unknown
  try {
    parsed = sjson.parse(text, null, PARSE_OPTIONS)
  } catch (error) {
    return { code: 'invalid_json', message: `not JSON: ${(error as Error).message}`, id: undefined }
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { code: 'invalid_message', message: 'a message is a JSON object {"type", "data", "id"?}', id: undefined }
  }
  const { type, data, id } = parsed as Record<string, unknown>
  // 1e400 parses to Infinity, which JSON cannot echo back
  if (id !== undefined && typeof id !== 'string' && !(typeof id === 'number' && Number.isFinite(id))) {
    return { code: 'invalid_message', message: '"id" must be a string or a finite number', id: undefined }
  }
  const messageId = id as MessageId | undefined
  if (typeof type !== 'string') return { code: 'invalid_message', message: '"type" must be a string', id: messageId }
  for (const key in parsed) {
    if (!MESSAGE_KEYS.has(key)) return { code: 'invalid_message', message: `unknown key ${echo(key)}: a message holds "type", "data" and "id" only`, id: messageId }
  }
  return { type, data, id: messageId }
}

/** An error frame `{"type":"error","id"?,"error":{"code","message"}}`; `id` only when the failing message had one. */
export function encodeError (code: string, message: string, id: MessageId | undefined): EncodedMessage {
  const frame = id === undefined
    ? { type: 'error', error: { code, message } }
    : { type: 'error', id, error: { code, message } }
  return { payload: Buffer.from(JSON.stringify(frame), 'utf8'), binary: false }
}

/** The constant start of every frame `{"type":T,...`, escaped once when the type is declared. */
export function typePrefix (type: string): string {
  return `{"type":${JSON.stringify(type)}`
}

/**
 * A reply frame `{"type":T,"id":I,"data":R}` from the precomputed `{"type":T` and the serialised data.
 */
export function encodeReply (prefix: string, id: MessageId, data: string): EncodedMessage {
  return { payload: Buffer.from(`${prefix},"id":${JSON.stringify(id)},"data":${data}}`, 'utf8'), binary: false }
}

/** An event frame `{"type":T,"data":D}` from the precomputed `{"type":T` and the serialised data. */
export function encodeEventFrame (prefix: string, data: string): EncodedMessage {
  return { payload: Buffer.from(`${prefix},"data":${data}}`, 'utf8'), binary: false }
}
