import type { WireErrorCode } from '../typed/wire.ts'

/**
 * Codes of a `HubClientError`: the server's error codes (or an application's own exposed code),
 * `timeout`, `closed` (the connection ended while waiting) and `overflow` (the buffer was full).
 */
export type HubClientErrorCode = WireErrorCode | 'timeout' | 'closed' | 'overflow' | (string & {})

/** A failed request or send: the server's error frame, or the client's own reason. */
export class HubClientError extends Error {
  /** The error frame's code, or the client's own (`timeout`, `closed`, `overflow`). */
  readonly code: HubClientErrorCode

  constructor (code: HubClientErrorCode, message: string) {
    super(message)
    this.name = 'HubClientError'
    this.code = code
  }
}
