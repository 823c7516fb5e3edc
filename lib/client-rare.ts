import type { FastifyBaseLogger } from 'fastify'
import { CloseCode } from './constants.ts'
import type { QueuedMessage } from './client.ts'

/**
 * The state of a client that most clients never set, or set only once they close: kept apart and
 * made on the first write, so that each idle client holds one empty slot instead of a dozen
 * (about 80 bytes). `Client` reads and writes it through accessors named as the fields were.
 */
export class ClientRare {
  /** Messages read while a handler was running; bounded by what one read holds. */
  queue: QueuedMessage[] | undefined = undefined
  /** onError already ran: it runs at most once per client. */
  errored = false
  /** When a server-side close began; 0 while open. */
  closingSince = 0
  /** Code and reason of the close, kept until onClose runs. */
  closeCode: number = CloseCode.abnormal
  closeReason = ''
  /** The close code ws sent when it closed the client for a protocol error; 0 if none. */
  protocolCloseCode = 0
  /** Start and count of the current rate-limit window. */
  windowStart = 0
  windowCount = 0
  /** Invalid frames this client sent to a typed route. */
  invalidMessages = 0
  /** Another node asked for its session: a ping is out to see whether the socket is alive. */
  probing = false
  /** A child of the request's logger bound to the client's id (made on first use). */
  log: FastifyBaseLogger | undefined = undefined
}
