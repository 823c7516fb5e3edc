import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import type { Frame } from './frame.ts'

/** A receiver the fan-out can cork: the client, which remembers whether it is corked. */
export interface CorkTarget {
  _raw: Duplex | undefined
  _corked: boolean
  /** Bytes written to the corked socket since it was last handed to the kernel. */
  _corkedBytes: number
}

/**
 * A corked socket is handed to the kernel mid-turn once it holds this much: a long burst then
 * leaves in large writes while the kernel keeps taking bytes, and what stays in the socket's
 * userland buffer is what the kernel refused, the measure of a slow consumer.
 */
const FLUSH_EVERY = 64 * 1024

/**
 * Writes pre-built frames straight to sockets, corking each socket on its first write of an
 * event-loop turn and uncorking all of them once the turn's synchronous work is done. Every message
 * of a turn then leaves a socket in one write syscall instead of one per message, which is where a
 * plain send loop spends most of its time.
 *
 * It also numbers the turns (`turn`), so that the hub can judge a receiver by what it left unsent
 * before the turn began, not by what the turn itself has just written.
 */
export class FanOut {
  /** Number of the current event-loop turn (grows when a turn that wrote something ends). */
  turn = 0
  #corked: CorkTarget[] = []
  #scheduled = false
  readonly #flush = (): void => {
    const corked = this.#corked
    this.#corked = []
    this.#scheduled = false
    this.turn++
    for (const target of corked) {
      target._corked = false
      target._corkedBytes = 0
      target._raw?.uncork()
    }
  }

  /** Makes sure the current turn ends (uncorks, numbers the next turn) once its synchronous work is done. */
  holdTurn (): void {
    if (!this.#scheduled) {
      this.#scheduled = true
      process.nextTick(this.#flush)
    }
  }

  /** Writes a frame to the target's socket (which must be set), corked until the turn ends. */
  write (target: CorkTarget, frame: Frame): void {
    const raw = target._raw as Duplex
    if (!target._corked) {
      target._corked = true
      raw.cork()
      this.#corked.push(target)
      this.holdTurn()
    }
    let length: number
    if (Buffer.isBuffer(frame)) {
      raw.write(frame)
      length = frame.length
    } else {
      raw.write(frame[0])
      raw.write(frame[1])
      length = frame[0].length + frame[1].length
    }
    target._corkedBytes += length
    if (target._corkedBytes >= FLUSH_EVERY) {
      // Uncorking writes synchronously what the kernel takes; the socket stays corked for the turn.
      target._corkedBytes = 0
      raw.uncork()
      raw.cork()
    }
  }
}

/**
 * The stream a ws socket writes to, for the hub to write frames to directly. Only for a socket
 * whose data frames all come from the hub (plain, or compressed by the hub without context
 * takeover): ws then writes only control frames to it, synchronously, so its frames and the hub's
 * keep their order. Reaching into ws's `_socket` is the one private access of this project (the
 * TCP socket, or the stream of `injectWS`).
 */
export function directStreamOf (socket: WebSocket): Duplex | undefined {
  return (socket as unknown as { _socket: Duplex | undefined })._socket
}
