import type { WebSocket } from 'ws'
import type { Client } from '../client.ts'
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
 * Waits for a resume flag's promised first frame, with the socket's other events covered meanwhile.
 * @returns its text, '' for a binary frame, or undefined when the socket closed or the time ran out (then closed 1008)
 */
function firstFrame (socket: WebSocket, timeout: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const done = (value: string | undefined): void => {
      clearTimeout(timer)
      socket.removeListener('message', onMessage)
      socket.removeListener('close', onClose)
      socket.removeListener('error', onError)
      resolve(value)
    }
    const onMessage = (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void => {
      // The rest waits, in order, for the client's own listeners.
      socket.pause()
      done(isBinary ? '' : Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8'))
    }
    const onClose = (): void => done(undefined)
    // ws reports protocol errors here before it closes; the close settles the wait.
    const onError = (): void => {}
    const timer = setTimeout(() => {
      socket.close(CloseCode.policyViolation, 'expected a $resume frame first')
      done(undefined)
    }, timeout)
    socket.on('message', onMessage)
    socket.once('close', onClose)
    socket.on('error', onError)
  })
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
  firstFrame(socket, readTimeout > 0 ? Math.min(readTimeout, RESUME_FRAME_TIMEOUT) : RESUME_FRAME_TIMEOUT).then(async (frame) => {
    const request = frame === undefined ? undefined : parseResume(frame)
    const claimed = request === undefined
      ? undefined
      : await claimSession(core, store, request, digest).catch((error: unknown) => {
        core.log.warn({ err: error }, 'fastify-ws-hub: a session could not be resumed (the history store did not answer); the client gets a fresh one')
        return undefined
      })
    if (frame === undefined || socket.readyState !== OPEN || core.closing) {
      admission.release()
      if (socket.readyState === OPEN) socket.close(CloseCode.goingAway, 'server shutdown')
      return
    }
    const client = create(claimed?.id, admission.settle())
    openClient(client, claimed === undefined ? freshSession(core, store, digest) : resumedSession(core, store, claimed))
  }, (error: unknown) => {
    admission.release()
    core.log.error({ err: error }, 'fastify-ws-hub: resume failed')
    socket.terminate()
  })
}
