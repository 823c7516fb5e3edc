import type { RawData, WebSocket } from 'ws'
import type { Client, QueuedMessage } from '../client.ts'
import { CloseCode } from '../constants.ts'
import type { HubCore } from '../hub-core.ts'
import { openClient } from '../read-loop.ts'
import { claimSession, freshSession, paramsDigest, resumedSession } from './session.ts'
import type { RecoveryStore } from './store.ts'
import { parseResume, wantsResume } from './wire.ts'

const OPEN = 1

/** Ms a socket opened with the resume flag has to send its `$resume` frame (or `readTimeout`, when shorter). */
const RESUME_FRAME_TIMEOUT = 10_000

/** The upgrade's admission slots: settled once the socket becomes a client (the id is known then). */
export interface PendingAdmission {
  /** The upgrade became a client: returns its address for the per-IP count. */
  settle (): string
  /** Nothing became of it (the peer left, the hub is closing). */
  release (): void
}

/**
 * Holds a socket between its upgrade and its client: every frame it sends is kept in order (the
 * first is the promised `$resume`), and errors have a listener (ws reports protocol errors there
 * before closing; an 'error' event without a listener would throw and end the process). `pause()`
 * stops the socket's reads, but frames already read in the same chunk still come: they are queued.
 */
class HeldSocket {
  readonly first: Promise<string | undefined>
  /** Frames after the first, for the client's read loop. */
  readonly later: QueuedMessage[] = []
  readonly #socket: WebSocket
  #timer: NodeJS.Timeout | undefined
  #settle: (frame: string | undefined) => void = () => {}
  #seen = false

  constructor (socket: WebSocket, timeout: number) {
    this.#socket = socket
    this.first = new Promise((resolve) => { this.#settle = resolve })
    socket.on('message', this.#onMessage)
    socket.on('close', this.#onClose)
    socket.on('error', this.#onError)
    this.#timer = setTimeout(() => {
      socket.close(CloseCode.policyViolation, 'expected a $resume frame first')
      this.#done(undefined)
    }, timeout)
  }

  readonly #onMessage = (data: RawData, isBinary: boolean): void => {
    const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
    if (this.#seen) {
      this.later.push({ data: isBinary ? bytes : bytes.toString('utf8'), isBinary })
      return
    }
    this.#seen = true
    this.#socket.pause()
    this.#done(isBinary ? '' : bytes.toString('utf8'))
  }

  readonly #onClose = (): void => { this.#done(undefined) }

  readonly #onError = (): void => {}

  #done (frame: string | undefined): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#settle(frame)
  }

  /** Lets go of the socket: the client's read loop has its own listeners now (or the socket is gone). */
  release (): void {
    clearTimeout(this.#timer)
    this.#socket.removeListener('message', this.#onMessage)
    this.#socket.removeListener('close', this.#onClose)
    this.#socket.removeListener('error', this.#onError)
  }
}

/**
 * Opens a client of a typed route on a hub with recovery. Without the resume flag it gets a fresh
 * session at once. With it, the socket's first frame must be `$resume`: a valid one whose session
 * can be recovered (token, params, no live holder, history complete) resumes it; anything else
 * gets a fresh session (`recovered === false`).
 * @param create makes the client, with the resumed id or a new one
 */
export function openWithSession (
  core: HubCore,
  store: RecoveryStore,
  socket: WebSocket,
  rawUrl: string | undefined,
  params: object,
  admission: PendingAdmission,
  create: (id: string | undefined, ip: string) => Client
): void {
  const digest = paramsDigest(params)
  if (!wantsResume(rawUrl)) {
    openClient(create(undefined, admission.settle()), freshSession(core, store, digest))
    return
  }
  const readTimeout = core.options.readTimeout
  const held = new HeldSocket(socket, readTimeout > 0 ? Math.min(readTimeout, RESUME_FRAME_TIMEOUT) : RESUME_FRAME_TIMEOUT)
  held.first.then(async (frame) => {
    const request = frame === undefined ? undefined : parseResume(frame)
    const claimed = request === undefined
      ? undefined
      : await claimSession(core, store, request, digest).catch((error: unknown) => {
        core.log.warn({ err: error }, 'fastify-ws-hub: a session could not be resumed (the history store did not answer); the client gets a fresh one')
        return undefined
      })
    if (frame === undefined || socket.readyState !== OPEN || core.closing) {
      held.release()
      admission.release()
      if (socket.readyState === OPEN) socket.close(CloseCode.goingAway, 'server shutdown')
      return
    }
    // Presented a session that could not be recovered (or no valid resume frame): a fresh one.
    if (claimed === undefined) core.counters.resumesRefused++
    const client = create(claimed?.id, admission.settle())
    // What came after the resume frame waits, in order, for the end of the opening (it is handled then).
    if (held.later.length > 0) client._queue = held.later
    openClient(client, claimed === undefined ? freshSession(core, store, digest) : resumedSession(core, store, claimed))
    held.release()
  }).catch((error: unknown) => {
    held.release()
    admission.release()
    core.log.error({ err: error }, 'fastify-ws-hub: resume failed')
    socket.terminate()
  })
}
