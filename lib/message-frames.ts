import type { DeflateProfile } from './deflate.ts'
import { frameData, type Frame } from './frame.ts'
import type { EncodedMessage } from './message.ts'

/**
 * The frame of a message for a socket written with `profile` (undefined: a socket without
 * compression), built for that socket alone.
 */
export function frameFor (message: EncodedMessage, profile: DeflateProfile | undefined): Frame {
  return profile === undefined ? frameData(message.payload, message.binary) : profile.frame(message)
}

/**
 * The frames of one message for a whole audience, each built the first time a receiver needs it:
 * the plain frame, and one compressed frame per deflate profile. A broadcast thus frames once,
 * compresses at most once per profile, and compresses nothing when no receiver negotiated it.
 */
export class MessageFrames {
  /** The message these frames carry. */
  readonly message: EncodedMessage
  #plain: Frame | undefined
  #compressed: Map<DeflateProfile, Frame> | undefined

  constructor (message: EncodedMessage) {
    this.message = message
  }

  /** The frame for a socket written with `profile` (undefined: no compression). */
  for (profile: DeflateProfile | undefined): Frame {
    const message = this.message
    if (profile === undefined || message.payload.length < profile.threshold) {
      this.#plain ??= frameData(message.payload, message.binary)
      return this.#plain
    }
    this.#compressed ??= new Map()
    let frame = this.#compressed.get(profile)
    if (frame === undefined) {
      frame = profile.frame(message)
      this.#compressed.set(profile, frame)
    }
    return frame
  }
}
