import { HubClientError } from './errors.ts'

interface Pending {
  resolve (data: unknown): void
  reject (error: HubClientError): void
  timer: ReturnType<typeof setTimeout>
  /** Written to a socket: a disconnection loses its reply. Buffered ones wait for the next socket. */
  sent: boolean
}

/** Requests waiting for their reply, by message id. */
export class Requests {
  readonly #pending = new Map<number, Pending>()
  #nextId = 0

  /**
   * Starts a request: a fresh id and the promise of its reply, rejected with `timeout` after
   * `timeout` ms (then `onTimeout` lets the caller forget a frame still buffered).
   */
  start (timeout: number, onTimeout: (id: number) => void): { id: number, reply: Promise<unknown> } {
    const id = ++this.#nextId
    const reply = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(id, new HubClientError('timeout', `no reply within ${timeout} ms`))
        onTimeout(id)
      }, timeout)
      this.#pending.set(id, { resolve, reject, timer, sent: false })
    })
    return { id, reply }
  }

  /** Marks a request as written to the socket. */
  sent (id: number): void {
    const pending = this.#pending.get(id)
    if (pending !== undefined) pending.sent = true
  }

  /** Whether a request still waits (a buffered frame of one that ended is not sent). */
  has (id: number): boolean {
    return this.#pending.has(id)
  }

  /** Settles a request with its reply's data. */
  resolve (id: number, data: unknown): boolean {
    const pending = this.#take(id)
    pending?.resolve(data)
    return pending !== undefined
  }

  /** Settles a request with an error. */
  fail (id: number, error: HubClientError): boolean {
    const pending = this.#take(id)
    pending?.reject(error)
    return pending !== undefined
  }

  /** Rejects with `closed` every request written to a socket, or every one with `all`. */
  close (all: boolean): void {
    for (const [id, pending] of this.#pending) {
      if (all || pending.sent) this.fail(id, new HubClientError('closed', 'connection closed before the reply'))
    }
  }

  #take (id: number): Pending | undefined {
    const pending = this.#pending.get(id)
    if (pending === undefined) return undefined
    clearTimeout(pending.timer)
    this.#pending.delete(id)
    return pending
  }
}
