import { UnserializableMessageError } from './errors.ts'

/**
 * What `send` and `broadcast` accept: a string (text frame), bytes (binary frame), or any other
 * value that JSON can represent (sent as JSON text).
 */
export type OutgoingMessage = string | Buffer | ArrayBuffer | ArrayBufferView | object | number | boolean | null

/** A message turned into the bytes of one frame, with the frame type to send it as. */
export interface EncodedMessage {
  /** The frame payload. */
  payload: Buffer
  /** `true` for a binary frame, `false` for a text frame. */
  binary: boolean
}

/**
 * Turns a value into frame bytes once, so a broadcast pays for it once whatever its audience.
 * @throws {UnserializableMessageError} for `undefined`, functions, symbols, BigInts and cycles
 */
export function encodeMessage (data: unknown): EncodedMessage {
  if (typeof data === 'string') return { payload: Buffer.from(data, 'utf8'), binary: false }
  // Caller bytes are copied: frames of a turn wait corked (and compressed frames wait for zlib)
  // until the turn ends, and the caller may refill its buffer before then. One copy per message,
  // not per receiver.
  if (Buffer.isBuffer(data)) return { payload: Buffer.from(data), binary: true }
  if (data instanceof ArrayBuffer) return { payload: Buffer.from(new Uint8Array(data)), binary: true }
  if (ArrayBuffer.isView(data)) return { payload: Buffer.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)), binary: true }
  return { payload: Buffer.from(toJson(data), 'utf8'), binary: false }
}

/**
 * The JSON text of a value.
 * @throws {UnserializableMessageError} for `undefined`, functions, symbols, BigInts and cycles
 */
export function toJson (data: unknown): string {
  let json: string | undefined
  try {
    json = JSON.stringify(data)
  } catch (error) {
    throw new UnserializableMessageError((error as Error).message)
  }
  if (json === undefined) throw new UnserializableMessageError(`${typeof data} has no JSON form`)
  return json
}
