/** A command of the adapter's on its way to Redis. */
interface InFlight {
  readonly sentAt: number
  readonly bytes: number
}

/**
 * Watches the adapter's commands on its commands connection: how many bytes of envelopes Redis
 * has not acknowledged yet, and whether it has left a command unanswered longer than the stall
 * timeout. A stalled Redis (SIGSTOP, a long script, a network split without a reset) keeps the
 * TCP connection up, so ioredis sees nothing wrong: only an answer that does not come shows it.
 */
export class CommandWatch {
  /** Bytes of envelopes handed to Redis and not yet acknowledged (or failed). */
  pendingBytes = 0
  /** Redis has left a command unanswered past the timeout, and has not answered one since. */
  stalled = false
  readonly #timeout: number
  readonly #onStall: () => void
  readonly #onAnswer: () => void
  /** In send order: the first is the oldest. */
  readonly #inFlight = new Set<InFlight>()
  #timer: NodeJS.Timeout | undefined

  /**
   * @param timeout ms a command may stay unanswered
   * @param onStall called once when a stall is seen
   * @param onAnswer called when Redis answers again after a stall
   */
  constructor (timeout: number, onStall: () => void, onAnswer: () => void) {
    this.#timeout = timeout
    this.#onStall = onStall
    this.#onAnswer = onAnswer
  }

  /** Checks for a stall a few times per timeout, so that one is seen within 1.25 timeouts. */
  start (): void {
    this.#timer = setInterval(() => this.check(), Math.max(5, Math.floor(this.#timeout / 4))).unref()
  }

  stop (): void {
    clearInterval(this.#timer)
  }

  /**
   * Watches a command until it settles.
   * @param bytes envelope bytes it carries, counted in `pendingBytes` meanwhile
   */
  track<T>(command: Promise<T>, bytes = 0): Promise<T> {
    const entry: InFlight = { sentAt: Date.now(), bytes }
    this.#inFlight.add(entry)
    this.pendingBytes += bytes
    const settled = (): void => {
      this.#inFlight.delete(entry)
      this.pendingBytes -= bytes
    }
    command.then(() => {
      settled()
      this.answered()
    }, settled)
    return command
  }

  /**
   * Redis answered (a reply, or a fresh connection is ready): a stall is over, unless an older
   * command is still overdue (on a cluster, one master may hang while another answers).
   */
  answered (): void {
    if (!this.stalled || this.#overdue()) return
    this.stalled = false
    this.#onAnswer()
  }

  /** Whether the oldest command in flight has waited longer than the timeout. */
  #overdue (): boolean {
    const oldest = this.#inFlight.values().next()
    return oldest.done !== true && Date.now() - oldest.value.sentAt > this.#timeout
  }

  /** Marks a stall when the oldest command in flight has waited longer than the timeout. */
  check (): void {
    if (this.stalled || !this.#overdue()) return
    this.stalled = true
    this.#onStall()
  }
}

/** Rejects when `promise` has not settled within `ms`. */
export function within<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<never>((_resolve, reject) => {
    // Unref'd: a wait must not keep a closing process alive.
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms).unref()
  })
  return Promise.race([promise, timedOut]).finally(() => clearTimeout(timer))
}
