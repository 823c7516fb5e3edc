import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import type { Frame } from './frame.js'

/** A receiver the fan-out can cork: the client, which remembers whether it is corked. */
export interface CorkTarget {
  _raw: Duplex | undefined
  _corked: boolean
}

/**
 * Writes pre-built frames straight to sockets, corking each socket on its first write of an
 * event-loop turn and uncorking all of them once the turn's synchronous work is done. Every message
 * of a turn then leaves a socket in one write syscall instead of one per message, which is where a
 * plain send loop spends most of its time.
 */
export class FanOut {
  #corked: CorkTarget[] = []
  #scheduled = false
  readonly #flush = (): void => {
    const corked = this.#corked
    this.#corked = []
    this.#scheduled = false
    for (const target of corked) {
      target._corked = false
      target._raw?.uncork()
    }
  }

  /** Writes a frame to the target's socket (which must be set), corked until the turn ends. */
  write (target: CorkTarget, frame: Frame): void {
    const raw = target._raw as Duplex
    if (!target._corked) {
      target._corked = true
      raw.cork()
      this.#corked.push(target)
      if (!this.#scheduled) {
        this.#scheduled = true
        process.nextTick(this.#flush)
      }
    }
    if (Buffer.isBuffer(frame)) {
      raw.write(frame)
    } else {
      raw.write(frame[0])
      raw.write(frame[1])
    }
  }
}

/**
 * The stream a ws socket writes to, when the hub may write frames to it directly: only without
 * permessage-deflate (compressed frames are per socket, so ws must build them) and only when ws
 * sits on a corkable stream. Reaching into ws's `_socket` is the one private access of this
 * project (the TCP socket, or the stream of `injectWS`); the same writes ws would do, in the same
 * order, so its own frames never interleave.
 */
export function directStreamOf (socket: WebSocket): Duplex | undefined {
  if (socket.extensions !== '') return undefined
  return (socket as unknown as { _socket: Duplex })._socket
}
