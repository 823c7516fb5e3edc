import type { HubEnvelope } from '../adapter.js'

// Wire format of an envelope: 'w' 'h' version flags | u32 header length | JSON header | payload.
// The JSON header is tiny (node id, rooms, except or to); the payload travels as raw bytes.
const MAGIC_0 = 0x77
const MAGIC_1 = 0x68
const VERSION = 1
const FLAG_BINARY = 1
const FLAG_DIRECT = 2
const PREAMBLE = 8

/** An envelope read from the channel, with the node that published it. */
export interface DecodedEnvelope {
  nodeId: string
  envelope: HubEnvelope
}

/** The header of a node's broadcasts to everyone, the common case: built once rather than per message. */
export function plainHeaderOf (nodeId: string): string {
  return JSON.stringify([nodeId, null, null])
}

/** Encodes an envelope for the channel; `plainHeader` is `plainHeaderOf(nodeId)`. */
export function encodeEnvelope (nodeId: string, plainHeader: string, envelope: HubEnvelope): Buffer {
  const header = envelope.kind === 'send'
    ? JSON.stringify([nodeId, envelope.to])
    : envelope.rooms === undefined && envelope.except === undefined
      ? plainHeader
      : JSON.stringify([nodeId, envelope.rooms ?? null, envelope.except ?? null])
  const headerLength = Buffer.byteLength(header)
  const payload = envelope.payload
  const message = Buffer.allocUnsafe(PREAMBLE + headerLength + payload.length)
  message[0] = MAGIC_0
  message[1] = MAGIC_1
  message[2] = VERSION
  message[3] = (envelope.binary ? FLAG_BINARY : 0) | (envelope.kind === 'send' ? FLAG_DIRECT : 0)
  message.writeUInt32BE(headerLength, 4)
  message.write(header, PREAMBLE)
  payload.copy(message, PREAMBLE + headerLength)
  return message
}

function isStringArray (value: unknown): value is string[] {
  return Array.isArray(value) && value.every(item => typeof item === 'string')
}

/** Decodes a message of the channel; undefined for anything that is not a well-formed envelope. */
export function decodeEnvelope (message: Buffer): DecodedEnvelope | undefined {
  if (message.length < PREAMBLE || message[0] !== MAGIC_0 || message[1] !== MAGIC_1 || message[2] !== VERSION) return undefined
  const flags = message[3] as number
  const headerEnd = PREAMBLE + message.readUInt32BE(4)
  if (flags > (FLAG_BINARY | FLAG_DIRECT) || headerEnd > message.length) return undefined
  let header: unknown
  try {
    header = JSON.parse(message.toString('utf8', PREAMBLE, headerEnd))
  } catch {
    return undefined
  }
  if (!Array.isArray(header) || typeof header[0] !== 'string') return undefined
  const nodeId = header[0]
  // A view, not a copy: redis-parser never reuses the memory of a reply it handed out.
  const payload = message.subarray(headerEnd)
  const binary = (flags & FLAG_BINARY) !== 0
  if ((flags & FLAG_DIRECT) !== 0) {
    if (header.length !== 2 || typeof header[1] !== 'string') return undefined
    return { nodeId, envelope: { kind: 'send', to: header[1], payload, binary } }
  }
  const [, rooms, except] = header as unknown[]
  if (header.length !== 3 || (rooms !== null && !isStringArray(rooms)) || (except !== null && typeof except !== 'string')) {
    return undefined
  }
  return {
    nodeId,
    envelope: { kind: 'broadcast', payload, binary, rooms: rooms ?? undefined, except: except ?? undefined }
  }
}
