import type { HubEnvelope } from '../adapter.ts'

// Wire format of an envelope, version 3:
//   'w' 'h' version flags | u32 header length | u32 sequence | u48 publish time | JSON header | payload
// JSON header: [node id, to] for sendTo; [node id, rooms | null, except | null] for a broadcast
// (one to several rooms is published on each room's channel, the same bytes on each).
// The sequence number (per publisher and channel) lets receivers see envelopes that never came;
// the publish time (ms since the epoch) lets them drop envelopes that come too late. Both are
// binary so the JSON header of a broadcast to everyone stays one string built once per node.
// The JSON header is tiny (node id, rooms, except or to); the payload travels as raw bytes.
/** The first byte of every message of the adapter (plain envelopes, and record-codec.ts's forms). */
export const MAGIC_0 = 0x77
const MAGIC_1 = 0x68
const VERSION = 3
const FLAG_BINARY = 1
const FLAG_DIRECT = 2
const SEQUENCE_OFFSET = 8
const TIME_OFFSET = 12
const PREAMBLE = 18

/** An envelope read from the channel, with the node that published it. */
export interface DecodedEnvelope {
  nodeId: string
  /** The publisher's number for it on its channel. */
  sequence: number
  /** When the publisher's hub published it, ms since the epoch by the publisher's clock. */
  publishedAt: number
  envelope: HubEnvelope
}

/** The header of a node's broadcasts to everyone, the common case: built once rather than per message. */
export function plainHeaderOf (nodeId: string): string {
  return JSON.stringify([nodeId, null, null])
}

/**
 * The JSON header of an envelope: [node id, to] for sendTo, [node id, rooms | null, except | null]
 * for a broadcast. Shared with the recorded form (record-codec.ts).
 * @param plainHeader `plainHeaderOf(nodeId)`
 */
export function headerOf (nodeId: string, plainHeader: string, envelope: HubEnvelope): string {
  if (envelope.kind === 'send') return JSON.stringify([nodeId, envelope.to])
  return envelope.rooms === undefined && envelope.except === undefined
    ? plainHeader
    : JSON.stringify([nodeId, envelope.rooms ?? null, envelope.except ?? null])
}

/**
 * Encodes an envelope for the channel, stamped with the time of the call; the sequence number
 * is stamped later, when it is handed to Redis (see `stampSequence`).
 * @param plainHeader `plainHeaderOf(nodeId)`
 */
export function encodeEnvelope (nodeId: string, plainHeader: string, envelope: HubEnvelope): Buffer {
  const header = headerOf(nodeId, plainHeader, envelope)
  const headerLength = Buffer.byteLength(header)
  const payload = envelope.payload
  const message = Buffer.allocUnsafe(PREAMBLE + headerLength + payload.length)
  message[0] = MAGIC_0
  message[1] = MAGIC_1
  message[2] = VERSION
  message[3] = flagsOf(envelope)
  message.writeUInt32BE(headerLength, 4)
  message.writeUIntBE(Date.now(), TIME_OFFSET, 6)
  message.write(header, PREAMBLE)
  payload.copy(message, PREAMBLE + headerLength)
  return message
}

/** The flags byte of an envelope (binary frame, sendTo), shared with the recorded form. */
export function flagsOf (envelope: HubEnvelope): number {
  return (envelope.binary ? FLAG_BINARY : 0) | (envelope.kind === 'send' ? FLAG_DIRECT : 0)
}

/**
 * Reads a flags byte and the JSON header after it into an envelope (see `parseHeader`); undefined
 * for unknown flags or a header that is not well formed. Shared with the recorded form.
 */
export function envelopeOf (flags: number, header: string, payload: Buffer): { nodeId: string, envelope: HubEnvelope } | undefined {
  if (flags > (FLAG_BINARY | FLAG_DIRECT)) return undefined
  return parseHeader(header, (flags & FLAG_DIRECT) !== 0, payload, (flags & FLAG_BINARY) !== 0)
}

/**
 * Writes the envelope's sequence number. Done when the envelope is handed to Redis, not when it
 * is published: an envelope dropped before it left (and counted as dropped) takes no number, so
 * receivers do not count it again as lost.
 * @param at where the number sits: that of a plain envelope by default, `BODY_SEQUENCE_OFFSET` for a recorded body
 */
export function stampSequence (message: Buffer, sequence: number, at = SEQUENCE_OFFSET): void {
  message.writeUInt32BE(sequence, at)
}

function isStringArray (value: unknown): value is string[] {
  return Array.isArray(value) && value.every(item => typeof item === 'string')
}

/** Decodes a message of the channel; undefined for anything that is not a well-formed envelope. */
export function decodeEnvelope (message: Buffer): DecodedEnvelope | undefined {
  if (message.length < PREAMBLE || message[0] !== MAGIC_0 || message[1] !== MAGIC_1 || message[2] !== VERSION) return undefined
  const headerEnd = PREAMBLE + message.readUInt32BE(4)
  if (headerEnd > message.length) return undefined
  const sequence = message.readUInt32BE(SEQUENCE_OFFSET)
  const publishedAt = message.readUIntBE(TIME_OFFSET, 6)
  // A view, not a copy: redis-parser never reuses the memory of a reply it handed out.
  const parsed = envelopeOf(message[3] as number, message.toString('utf8', PREAMBLE, headerEnd), message.subarray(headerEnd))
  if (parsed === undefined) return undefined
  return { nodeId: parsed.nodeId, sequence, publishedAt, envelope: parsed.envelope }
}

/**
 * Reads the JSON header of an envelope (see `headerOf`) and makes the envelope of it; undefined
 * when the header is not well formed.
 */
function parseHeader (text: string, direct: boolean, payload: Buffer, binary: boolean): { nodeId: string, envelope: HubEnvelope } | undefined {
  let header: unknown
  try {
    header = JSON.parse(text)
  } catch {
    return undefined
  }
  if (!Array.isArray(header) || typeof header[0] !== 'string') return undefined
  const nodeId = header[0]
  if (direct) {
    if (header.length !== 2 || typeof header[1] !== 'string') return undefined
    return { nodeId, envelope: { kind: 'send', to: header[1], payload, binary } }
  }
  const [, rooms, except] = header as unknown[]
  if (header.length !== 3 || (rooms !== null && !isStringArray(rooms)) || (except !== null && typeof except !== 'string')) {
    return undefined
  }
  return { nodeId, envelope: { kind: 'broadcast', payload, binary, rooms: rooms ?? undefined, except: except ?? undefined } }
}
