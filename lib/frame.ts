const OPCODE_TEXT = 0x1
const OPCODE_BINARY = 0x2
const OPCODE_PING = 0x9
const FIN = 0x80
/** Set on the first frame of a permessage-deflate compressed message (RFC 7692). */
const RSV1 = 0x40

/** Payloads up to this size are copied behind their header so that each socket gets one write. */
const COPY_LIMIT = 16 * 1024

/** A server frame (RFC 6455, unmasked) ready to be written to any number of sockets. */
export type Frame = Buffer | readonly [Buffer, Buffer]

function header (opcode: number, length: number, extra: number): Buffer {
  const size = length < 126 ? 2 : length < 65_536 ? 4 : 10
  const target = Buffer.allocUnsafe(size + extra)
  target[0] = FIN | opcode
  if (size === 2) {
    target[1] = length
  } else if (size === 4) {
    target[1] = 126
    target.writeUInt16BE(length, 2)
  } else {
    target[1] = 127
    target.writeUInt32BE(0, 2)
    target.writeUInt32BE(length, 6)
  }
  return target
}

/**
 * Frames a data message once for every receiver. Small payloads are copied behind the header
 * (one buffer, one write); large ones keep their own buffer so nothing big is copied.
 * `compressed`: the payload is permessage-deflate output, and the frame says so (RSV1); the
 * message is always one frame, so this first frame is also its last.
 */
export function frameData (payload: Buffer, binary: boolean, compressed = false): Frame {
  const opcode = (binary ? OPCODE_BINARY : OPCODE_TEXT) | (compressed ? RSV1 : 0)
  const length = payload.length
  if (length > COPY_LIMIT) return [header(opcode, length, 0), payload]
  const frame = header(opcode, length, length)
  payload.copy(frame, frame.length - length)
  return frame
}

/** Frames a ping control frame (payload at most 125 bytes, checked by the options). */
export function framePing (payload: Buffer): Buffer {
  const frame = header(OPCODE_PING, payload.length, payload.length)
  payload.copy(frame, 2)
  return frame
}
