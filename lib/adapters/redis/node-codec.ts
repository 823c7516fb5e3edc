import type { NodeMessage } from '../adapter.ts'
import { MAGIC_0 } from './codec.ts'

// Wire format of node messages (the hub's cluster-wide operations, `emitToNodes`), beside the
// envelopes of codec.ts and record-codec.ts:
//   question: 'w' 'q' | JSON [request id, sender node id, message]   (request id 0: no answer wanted)
//   answer:   'w' 'a' | JSON [request id, answering node id, answer]  (on the asker's node channel)
// JSON: they are rare, small next to the envelopes, and their arguments are JSON already.

const MAGIC_QUESTION = 0x71
const MAGIC_ANSWER = 0x61

/** A node message as it came on a channel. */
export interface DecodedQuestion {
  /** The asker's number for it; 0 when no answer is wanted. */
  requestId: number
  from: string
  message: NodeMessage
}

/** An answer as it came on this node's channel. */
export interface DecodedAnswer {
  requestId: number
  from: string
  answer: unknown
}

function encode (magic: number, parts: unknown[]): Buffer {
  const json = Buffer.from(JSON.stringify(parts))
  const buffer = Buffer.allocUnsafe(2 + json.length)
  buffer[0] = MAGIC_0
  buffer[1] = magic
  json.copy(buffer, 2)
  return buffer
}

/** Parses the JSON array of a node message; undefined when it is not [positive integer, string, x]. */
function decode (message: Buffer): [number, string, unknown] | undefined {
  let parts: unknown
  try {
    parts = JSON.parse(message.toString('utf8', 2))
  } catch {
    return undefined
  }
  if (!Array.isArray(parts) || parts.length !== 3) return undefined
  const [requestId, from] = parts as unknown[]
  if (!Number.isSafeInteger(requestId) || (requestId as number) < 0 || typeof from !== 'string') return undefined
  return parts as [number, string, unknown]
}

/** Encodes a node message; `requestId` 0 when no answer is wanted. */
export function encodeQuestion (requestId: number, from: string, message: NodeMessage): Buffer {
  return encode(MAGIC_QUESTION, [requestId, from, message])
}

/** Encodes an answer to a node message. */
export function encodeAnswer (requestId: number, from: string, answer: unknown): Buffer {
  return encode(MAGIC_ANSWER, [requestId, from, answer ?? null])
}

/** Whether a channel message is a node message (not necessarily a well-formed one). */
export function isQuestion (message: Buffer): boolean {
  return message.length >= 2 && message[0] === MAGIC_0 && message[1] === MAGIC_QUESTION
}

/** Whether a channel message is an answer (not necessarily a well-formed one). */
export function isAnswer (message: Buffer): boolean {
  return message.length >= 2 && message[0] === MAGIC_0 && message[1] === MAGIC_ANSWER
}

/** Decodes a node message; undefined when it is not well formed. */
export function decodeQuestion (buffer: Buffer): DecodedQuestion | undefined {
  const parts = decode(buffer)
  if (parts === undefined) return undefined
  const message = parts[2] as Partial<NodeMessage> | null
  if (typeof message !== 'object' || message === null || Array.isArray(message) || typeof message.op !== 'string') return undefined
  return { requestId: parts[0], from: parts[1], message: message as NodeMessage }
}

/** Decodes an answer; undefined when it is not well formed. */
export function decodeAnswer (buffer: Buffer): DecodedAnswer | undefined {
  const parts = decode(buffer)
  return parts === undefined || parts[0] === 0 ? undefined : { requestId: parts[0], from: parts[1], answer: parts[2] }
}
