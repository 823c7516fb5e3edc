import { InvalidArgumentError } from '../errors.ts'

/** Whom a cluster-wide operation acts on: one client, by id, or every member of a room. */
export type ControlTarget = string | { readonly room: string }

/** A target as it travels between nodes. */
export type WireTarget = { readonly id: string } | { readonly room: string }

/** Most bytes of a close reason (RFC 6455: a control frame's payload is 125 bytes, 2 of them the code). */
const MAX_REASON_BYTES = 123

/**
 * A target in its travelling form.
 * @throws {InvalidArgumentError} when it is neither a client id nor `{ room }`
 */
export function targetOf (target: ControlTarget): WireTarget {
  if (typeof target === 'string' && target !== '') return { id: target }
  if (typeof target === 'object' && target !== null && typeof target.room === 'string') return { room: target.room }
  throw new InvalidArgumentError('target', 'expected a client id or { room }')
}

/** @throws {InvalidArgumentError} when a room name is not a string */
export function checkRoom (room: unknown): void {
  if (typeof room !== 'string') throw new InvalidArgumentError('room', 'expected a string')
}

/**
 * Checks a close code and reason before they travel: a node must not learn that they are wrong
 * from ws throwing in the middle of closing its clients.
 * @throws {InvalidArgumentError} for a code other than 1000 or 3000-4999, or a reason over 123 bytes
 */
export function checkCloseCode (code: number, reason: string): void {
  if (code !== 1000 && !(Number.isInteger(code) && code >= 3000 && code <= 4999)) {
    throw new InvalidArgumentError('code', `expected 1000 or 3000-4999, got ${String(code)}`)
  }
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > MAX_REASON_BYTES) {
    throw new InvalidArgumentError('reason', `expected a string of at most ${MAX_REASON_BYTES} bytes`)
  }
}
