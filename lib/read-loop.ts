import type { RawData, WebSocket } from 'ws'
import type { Client } from './client.ts'
import { CloseCode } from './constants.ts'
import { HandlerError } from './errors.ts'
import type { SessionOpening } from './recovery/session.ts'
import { callHandler, connectionCloseChannel, connectionOpenChannel, messageInChannel, observingHandlers, UNTYPED_HANDLER } from './metrics/index.ts'

/** The per-client hooks of a route, as the read loop calls them. */
export interface RouteHandlers {
  onOpen?: ((client: Client) => unknown) | undefined
  onMessage?: ((client: Client, data: string | Buffer, isBinary: boolean) => unknown) | undefined
  onError?: ((client: Client, error: Error) => unknown) | undefined
  onClose?: ((client: Client, code: number, reason: string) => unknown) | undefined
  /** `onMessage` is a typed route's dispatcher, which times and traces each handler under its message type itself. */
  typed?: boolean
}

const kClient = Symbol('fastify-ws-hub.client')

/** A ws socket that knows its client: listeners are shared functions, not closures per client. */
type HubSocket = WebSocket & { [kClient]: Client }

/** Whether a handler returned a promise (or any thenable) that the read loop must wait for. */
export function isPromiseLike (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === 'function'
}

/** What a handler threw, as an Error (a non-Error is wrapped in a HandlerError). */
export function asError (value: unknown): Error {
  return value instanceof Error ? value : new HandlerError(String(value))
}

/**
 * Starts a registered client's life: listeners, handshake message, then `onOpen`. Messages that
 * arrive before `onOpen` settles wait in order, with the socket paused. With an adapter that
 * routes `sendTo` by client (Redis), the handshake waits until messages sent to the client from
 * other nodes reach this node: a client that has its handshake can be reached from anywhere.
 */
export function openClient (client: Client, session?: SessionOpening): void {
  const socket = client.socket as HubSocket
  socket[kClient] = client
  socket.on('message', onSocketMessage)
  socket.on('pong', onSocketPong)
  socket.on('close', onSocketClose)
  socket.on('error', onSocketError)

  const core = client._core
  const reachable = core.add(client)
  core.connections.opened++
  if (connectionOpenChannel.hasSubscribers) connectionOpenChannel.publish({ client })
  if (reachable === undefined && session === undefined) {
    greet(client)
    return
  }
  // As an async handler: the socket is paused meanwhile, what the client sends waits its turn, and
  // onClose (should it leave first) still comes after onOpen.
  runHandler(client, async () => {
    await reachable
    if (session !== undefined) {
      try {
        await session.prepare(client)
      } catch (error) {
        handlerFailed(client, error)
      }
    }
    client._greeted = true
    // Gone meanwhile: no handshake, but onOpen still runs, so that onClose always follows an onOpen.
    if (client._state === 'open') {
      sendHandshake(client)
      session?.greet(client)
    }
    await client._handlers.onOpen?.(client)
  })
}

/** Sends the handshake message, then runs `onOpen`. */
function greet (client: Client): void {
  client._greeted = true
  try {
    sendHandshake(client)
  } catch (error) {
    handlerFailed(client, error)
    return
  }
  const onOpen = client._handlers.onOpen
  if (onOpen !== undefined) runHandler(client, () => onOpen(client))
}

/** Sends the handshake message, if the hub has one (a handshake function that throws throws here). */
function sendHandshake (client: Client): void {
  const handshake = client._core.options.handshakeMessage
  if (handshake !== false) client.send(typeof handshake === 'function' ? handshake(client) : handshake)
}

/** Runs a handler; while a promise it returned is pending, the client is busy and its socket paused. */
function runHandler (client: Client, call: () => unknown): void {
  let result: unknown
  try {
    result = call()
  } catch (error) {
    handlerFailed(client, error)
    return
  }
  if (!isPromiseLike(result)) return
  client._busy = true
  client.socket.pause()
  result.then(() => handlerSettled(client), (error: unknown) => {
    handlerFailed(client, error)
    handlerSettled(client)
  })
}

/** After an async handler: handle what queued up meanwhile, then read again (or finish the close). */
function handlerSettled (client: Client): void {
  client._busy = false
  client._lastSeen = Date.now()
  const queue = client._queue ?? []
  // Once the server began closing the client, what it still had queued is not handled (as for new
  // messages); what the peer sent before closing itself is.
  if (client._closingSince !== 0) queue.length = 0
  while (!client._busy) {
    const next = queue.shift()
    if (next === undefined) break
    handleMessage(client, next.data, next.isBinary)
  }
  if (client._busy) return
  if (client._state === 'closed') {
    finishClose(client)
  } else {
    client.socket.resume()
  }
}

function handleMessage (client: Client, data: string | Buffer, isBinary: boolean): void {
  const { onMessage, typed } = client._handlers
  if (onMessage === undefined) return
  const metrics = client._core.metrics
  // A typed route's dispatcher times and traces its handlers itself, under their message types.
  if (typed === true || !observingHandlers(metrics)) {
    runHandler(client, () => onMessage(client, data, isBinary))
    return
  }
  runHandler(client, () => callHandler(metrics, client, UNTYPED_HANDLER, data, () => onMessage(client, data, isBinary)))
}

/** A handler threw: onError (once), then close 1011; messages still queued are dropped with it. */
function handlerFailed (client: Client, thrown: unknown): void {
  client._core.counters.handlerErrors++
  if (client._queue !== undefined) client._queue.length = 0
  reportError(client, asError(thrown))
  client.close(CloseCode.internalError, 'internal error')
}

/** Calls onError at most once per client; without onError, logs. An onError that throws is logged. */
function reportError (client: Client, error: Error): void {
  if (client._errored) {
    client.log.debug({ err: error }, 'websocket client error after the first')
    return
  }
  client._errored = true
  notifyError(client, error)
}

/**
 * Hands an error to the route's `onError` (or logs it without one); an `onError` that throws or
 * rejects is logged. Typed routes call it for each failed handler, since their clients stay open.
 */
export function notifyError (client: Client, error: Error): void {
  const onError = client._handlers.onError
  if (onError === undefined) {
    client.log.error({ err: error }, 'websocket client error')
    return
  }
  try {
    const result = onError(client, error)
    if (isPromiseLike(result)) {
      result.then(undefined, (failure: unknown) => client.log.error({ err: failure }, 'onError failed'))
    }
  } catch (failure) {
    client.log.error({ err: failure }, 'onError failed')
  }
}

function toBuffer (data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
}

function onSocketMessage (this: WebSocket, raw: RawData, isBinary: boolean): void {
  const client = (this as HubSocket)[kClient]
  const core = client._core
  const bytes = toBuffer(raw)
  const now = Date.now()
  client._lastSeen = now
  client._heardAt = now
  client._heartbeatFailures = 0
  client._awaitingPong = false
  core.counters.messagesIn++
  core.counters.bytesIn += bytes.length
  if (messageInChannel.hasSubscribers) messageInChannel.publish({ client, data: bytes, isBinary })
  // Once the server has begun closing a client, what it still sends is not handled.
  if (client._state !== 'open') return

  // ws enforces maxPayload when this plugin configured it; this covers a server registered by the user.
  if (bytes.length > core.options.maxPayload) {
    client.close(CloseCode.messageTooBig, 'message too big')
    return
  }
  const rateLimit = core.options.rateLimit
  if (rateLimit !== false) {
    if (now - client._windowStart >= rateLimit.windowMs) {
      client._windowStart = now
      client._windowCount = 0
    }
    if (++client._windowCount > rateLimit.max) {
      core.counters.rateLimitCloses++
      client.close(CloseCode.policyViolation, 'rate limit exceeded')
      return
    }
  }

  const data = isBinary ? bytes : bytes.toString('utf8')
  if (client._busy) {
    (client._queue ??= []).push({ data, isBinary })
    return
  }
  handleMessage(client, data, isBinary)
}

function onSocketPong (this: WebSocket): void {
  const client = (this as HubSocket)[kClient]
  client._lastSeen = Date.now()
  client._heardAt = client._lastSeen
  client._heartbeatFailures = 0
  client._awaitingPong = false
}

/**
 * The close code ws sent for a protocol error (1002, 1007, 1009), which it keeps on the error
 * under a symbol of its own; 0 when there is none.
 */
function protocolCloseCode (error: Error): number {
  for (const key of Object.getOwnPropertySymbols(error)) {
    const value = (error as unknown as Record<symbol, unknown>)[key]
    if (key.description === 'status-code' && typeof value === 'number') return value
  }
  return 0
}

function onSocketError (this: WebSocket, error: Error): void {
  const client = (this as HubSocket)[kClient]
  // ws has already started the close with the right code (1002, 1007, 1009); this only reports it.
  client._protocolCloseCode = protocolCloseCode(error)
  reportError(client, error)
}

function onSocketClose (this: WebSocket, code: number, reason: Buffer): void {
  const client = (this as HubSocket)[kClient]
  // 'closed' only from here: the socket has closed, and onClose waits for a running handler.
  client._state = 'closed'
  // After a protocol error ws stops reading, so the peer's answer to its close frame is never
  // seen and ws reports 1006: the code that closed the connection is the one ws sent.
  client._closeCode = code === CloseCode.abnormal && client._protocolCloseCode !== 0 ? client._protocolCloseCode : code
  client._closeReason = reason.toString('utf8')
  client._core.remove(client)
  client._core.connections.close(client._closeCode)
  if (connectionCloseChannel.hasSubscribers) connectionCloseChannel.publish({ client, code: client._closeCode, reason: client._closeReason })
  if (!client._busy) finishClose(client)
}

/** onClose, exactly once, after the client has left the hub and its last handler has settled. */
function finishClose (client: Client): void {
  const core = client._core
  const onClose = client._handlers.onClose
  if (onClose === undefined) {
    core.finished()
    return
  }
  const failed = (error: unknown): void => {
    client.log.error({ err: error }, 'onClose failed')
  }
  try {
    const result = onClose(client, client._closeCode, client._closeReason)
    if (isPromiseLike(result)) {
      result.then(() => core.finished(), (error: unknown) => {
        failed(error)
        core.finished()
      })
      return
    }
  } catch (error) {
    failed(error)
  }
  core.finished()
}
