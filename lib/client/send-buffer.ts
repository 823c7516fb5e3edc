import { HubClientError } from './errors.ts'

/** A frame waiting for the connection, with the id of the request it carries, if any. */
export interface Queued {
  readonly frame: string | ArrayBuffer | ArrayBufferView
  readonly id?: number
}

/** The bounded queue of frames sent while the client is not open, flushed in order on open. */
export class SendBuffer {
  /** Frames dropped because the buffer was full. */
  dropped = 0
  readonly items: Queued[] = []
  readonly #size: number
  readonly #reject: boolean

  constructor (size: number, reject: boolean) {
    this.#size = size
    this.#reject = reject
  }

  /**
   * Queues a frame; when full, drops the oldest and returns it (its request, if any, must fail)
   * or, with `overflow: 'reject'`, throws `overflow`.
   */
  push (item: Queued): Queued | undefined {
    let dropped: Queued | undefined
    if (this.items.length >= this.#size) {
      if (this.#reject) throw new HubClientError('overflow', 'send buffer full')
      dropped = this.items.shift()
      this.dropped++
    }
    // A buffer of size 0 keeps nothing: the frame itself is what is dropped
    if (this.#size > 0) this.items.push(item)
    else dropped = item
    return dropped
  }

  /** Removes the frame of a request that ended (timed out) before it could be sent. */
  remove (id: number): void {
    const index = this.items.findIndex(item => item.id === id)
    if (index >= 0) this.items.splice(index, 1)
  }

  /** Takes every queued frame, oldest first. */
  drain (): Queued[] {
    return this.items.splice(0)
  }
}
