import type { HubEnvelope } from '../adapter.ts'
import { envelopeOf, flagsOf, headerOf, MAGIC_0 } from './codec.ts'

// Wire formats of session recovery, beside the plain envelopes of codec.ts ('w' 'h' v3).
//
// Recorded body: what a stream entry keeps (field `m`) and what a recorded message carries:
//   version flags | u32 header length | u32 sequence | u48 publish time | u48 ordinal | JSON header | payload
// The JSON header is that of a plain envelope (`headerOf`). The ordinal (the publisher's count of
// its recorded publishes) and the publish time make the entry's `Origin`.
//
// Recorded message, as the record script publishes it (it alone knows the offset):
//   'w' 'r' | u8 length | position ("<epoch>:<offset>", ascii; length 0: not recorded) | body
// A `send` to a client without a session goes the same way with no position, so that every
// message of `record` comes back to its publisher through Redis, in one order with the others.
//
// Control message, on a client's channel, for the node that holds the client:
//   'w' 'c' | u8 operation | client id (utf8)

const MAGIC_RECORDED = 0x72
const MAGIC_CONTROL = 0x63
const BODY_VERSION = 1
/** Where the sequence number sits in a body; stamped when it is handed to Redis, as in codec.ts. */
export const BODY_SEQUENCE_OFFSET = 6
const BODY_TIME_OFFSET = 10
const BODY_ORDINAL_OFFSET = 16
const BODY_PREAMBLE = 22

/** The operation of a control message: let the client go if its socket is dead. */
export const CONTROL_RELEASE = 1

/** A recorded body, decoded. */
export interface DecodedBody {
  nodeId: string
  /** The publisher's number for it on its channel (recorded messages have their own numbering). */
  sequence: number
  publishedAt: number
  ordinal: number
  envelope: HubEnvelope
}

/** A recorded message as it came on a channel. */
export interface DecodedRecorded extends DecodedBody {
  /** Where the script recorded it; undefined when it was not recorded (a send to a client without a session). */
  position: { epoch: string, offset: number } | undefined
}

/** A control message as it came on a channel. */
export interface DecodedControl {
  operation: number
  clientId: string
}

/**
 * Encodes a body, stamped with the time of the call; the sequence number comes later
 * (`stampSequence(body, n, BODY_SEQUENCE_OFFSET)`).
 * @param plainHeader `plainHeaderOf(nodeId)`
 */
export function encodeBody (nodeId: string, plainHeader: string, ordinal: number, envelope: HubEnvelope): Buffer {
  const header = headerOf(nodeId, plainHeader, envelope)
  const headerLength = Buffer.byteLength(header)
  const payload = envelope.payload
  const body = Buffer.allocUnsafe(BODY_PREAMBLE + headerLength + payload.length)
  body[0] = BODY_VERSION
  body[1] = flagsOf(envelope)
  body.writeUInt32BE(headerLength, 2)
  body.writeUInt32BE(0, BODY_SEQUENCE_OFFSET)
  body.writeUIntBE(Date.now(), BODY_TIME_OFFSET, 6)
  body.writeUIntBE(ordinal, BODY_ORDINAL_OFFSET, 6)
  body.write(header, BODY_PREAMBLE)
  payload.copy(body, BODY_PREAMBLE + headerLength)
  return body
}

/** Decodes a body (of a stream entry, or of a recorded message); undefined when it is not well formed. */
export function decodeBody (body: Buffer): DecodedBody | undefined {
  if (body.length < BODY_PREAMBLE || body[0] !== BODY_VERSION) return undefined
  const headerEnd = BODY_PREAMBLE + body.readUInt32BE(2)
  if (headerEnd > body.length) return undefined
  const parsed = envelopeOf(body[1] as number, body.toString('utf8', BODY_PREAMBLE, headerEnd), body.subarray(headerEnd))
  if (parsed === undefined) return undefined
  return {
    nodeId: parsed.nodeId,
    sequence: body.readUInt32BE(BODY_SEQUENCE_OFFSET),
    publishedAt: body.readUIntBE(BODY_TIME_OFFSET, 6),
    ordinal: body.readUIntBE(BODY_ORDINAL_OFFSET, 6),
    envelope: parsed.envelope
  }
}

/** Whether a channel message is a recorded message (not necessarily a well-formed one). */
export function isRecorded (message: Buffer): boolean {
  return message.length >= 3 && message[0] === MAGIC_0 && message[1] === MAGIC_RECORDED
}

/** Whether a channel message is a control message (not necessarily a well-formed one). */
export function isControl (message: Buffer): boolean {
  return message.length >= 3 && message[0] === MAGIC_0 && message[1] === MAGIC_CONTROL
}

/** Decodes a recorded message (one that `isRecorded`); undefined when it is not well formed. */
export function decodeRecorded (message: Buffer): DecodedRecorded | undefined {
  const bodyStart = 3 + (message[2] as number)
  if (bodyStart > message.length) return undefined
  let position: DecodedRecorded['position']
  if (bodyStart > 3) {
    const text = message.toString('latin1', 3, bodyStart)
    const colon = text.lastIndexOf(':')
    const offset = Number(text.slice(colon + 1))
    if (colon < 1 || !Number.isSafeInteger(offset) || offset < 1) return undefined
    position = { epoch: text.slice(0, colon), offset }
  }
  const body = decodeBody(message.subarray(bodyStart))
  return body === undefined ? undefined : { ...body, position }
}

/** Encodes a control message for the node that holds a client. */
export function encodeControl (operation: number, clientId: string): Buffer {
  const id = Buffer.from(clientId)
  const message = Buffer.allocUnsafe(3 + id.length)
  message[0] = MAGIC_0
  message[1] = MAGIC_CONTROL
  message[2] = operation
  id.copy(message, 3)
  return message
}

/** Decodes a control message (one that `isControl`). */
export function decodeControl (message: Buffer): DecodedControl {
  return { operation: message[2] as number, clientId: message.toString('utf8', 3) }
}
