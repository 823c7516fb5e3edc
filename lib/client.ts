import { randomUUID } from 'node:crypto'
import type { Duplex } from 'node:stream'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { Hub } from './hub.ts'
import type { HubCore } from './hub-core.ts'
import type { DeflateProfile } from './deflate.ts'
import type { RouteHandlers } from './read-loop.ts'
import { CloseCode } from './constants.ts'
import { encodeMessage, type OutgoingMessage } from './message.ts'
import { encodeEvent, type EventType, type HubEvents } from './typed/index.ts'
import type { ClientSession } from './recovery/session.ts'
import { roomStream } from './recovery/store.ts'

/** Where a client is in its life: `open` until a close starts, `closing` until the socket ends. */
export type ClientState = 'open' | 'closing' | 'closed'

/** Anything a custom-params object may be. */
export type ClientParams = object

/**
 * The upgrade request of a client whose route has no `schema`. An interface, not an alias: the
 * emitted declarations then name it instead of spelling out Fastify's defaults (and their imports).
 */
export interface PlainUpgradeRequest extends FastifyRequest {}

/** A message waiting while the client's previous one is being handled. */
export interface QueuedMessage {
  data: string | Buffer
  isBinary: boolean
}

const EMPTY_ROOMS: ReadonlySet<string> = new Set()
/** What `join` returns for a client that is not open: there is nothing to wait for. */
const NOT_JOINED = Promise.resolve()

/**
 * One websocket connection of one upgrade request, as handlers see it. Handlers get the same
 * object from `onOpen` to `onClose`; `params` holds what `onUpgrade` returned for this request.
 * @typeParam TParams the custom params, typed by the route's `params` schema
 * @typeParam TRequest the upgrade request, typed by the route's `schema` (its query, params, headers)
 * @typeParam TEvents the events it may be sent, by type: its route's `events` (`HubEvents` for a route without)
 */
export class Client<
  TParams extends ClientParams = Record<string, unknown>,
  TRequest extends FastifyRequest = PlainUpgradeRequest,
  TEvents extends object = HubEvents
> {
  /**
   * Unique id (a random UUID), unique across every node of a cluster. A client that resumed its
   * session (`recovered`) has the id of the connection it resumed.
   */
  readonly id: string
  /** The hub this client belongs to; its `broadcastEvent` takes the events of this client's route. */
  readonly hub: Hub<TEvents>
  /** The custom params `onUpgrade` returned, typed from the route's `params` schema. */
  readonly params: TParams
  /** The upgrade request (its `id`, `query`, `headers`, decorators), typed from the route's `schema`. */
  readonly request: TRequest
  /** The underlying `ws` WebSocket; frames written past the hub lose its ordering guarantees. */
  readonly socket: WebSocket
  /** When the socket opened, ms since the epoch. */
  readonly connectedAt: number

  /** @internal */ readonly _core: HubCore
  /** @internal */ readonly _handlers: RouteHandlers
  /** @internal the stream frames are written to directly; undefined when `ws` must frame (context takeover) */
  _raw: Duplex | undefined
  /** @internal the shared compression of the frames written to `_raw`; undefined: plain frames */
  _deflate: DeflateProfile | undefined
  /** @internal */ _state: ClientState = 'open'
  /** @internal its handshake message is on its way: other messages may follow (until then, none is written) */
  _greeted = false
  /** @internal created on the first join: most clients never join a room */
  _rooms: Set<string> | undefined
  /** @internal */ _heartbeatFailures = 0
  /** @internal */ _awaitingPong = false
  /** @internal last time a message or pong arrived, or a handler was running */
  _lastSeen: number
  /** @internal when the client was first seen above maxBufferedBytes; 0 when it is not */
  _slowSince = 0
  /** @internal when a server-side close began; 0 while open */
  _closingSince = 0
  /** @internal corked by the fan-out until the end of this event-loop turn */
  _corked = false
  /** @internal bytes corked since the socket was last handed to the kernel */
  _corkedBytes = 0
  /** @internal the fan-out turn of the last write attempt to this client */
  _turn = -1
  /** @internal the client had more than maxBufferedBytes unsent when this turn first wrote to it */
  _slowThisTurn = false
  /** @internal number of the last multi-room broadcast that reached it (deduplicates members) */
  _broadcastMark = 0
  /** @internal a handler (onOpen or onMessage) is running; the socket is paused meanwhile */
  _busy = false
  /** @internal messages read while a handler was running; bounded by what one read holds */
  _queue: QueuedMessage[] | undefined
  /** @internal onError already ran: it runs at most once per client */
  _errored = false
  /** @internal the socket has closed; onClose waits for the running handler */
  _socketClosed = false
  /** @internal code and reason of the close, kept until onClose runs */
  _closeCode: number = CloseCode.abnormal
  /** @internal */ _closeReason = ''
  /** @internal the close code ws sent when it closed the client for a protocol error; 0 if none */
  _protocolCloseCode = 0
  /** @internal timestamps of messages in the current rate-limit window */
  _windowStart = 0
  /** @internal */ _windowCount = 0
  /** @internal invalid frames this client sent to a typed route */
  _invalidMessages = 0
  /** @internal remote address, kept to release its per-IP slot ('' when addresses are not counted) */
  _ip: string
  /** @internal its session, on a typed route of a hub with `recovery` */
  _session: ClientSession | undefined
  /** @internal last time a message or a pong arrived (not a handler's end): what proves the socket alive */
  _heardAt: number
  /** @internal another node asked for its session: a ping is out to see whether the socket is alive */
  _probing = false
  #log: FastifyBaseLogger | undefined

  /** @internal clients are created by the hub when an upgrade succeeds */
  constructor (core: HubCore, hub: Hub<TEvents>, socket: WebSocket, request: TRequest, params: TParams, handlers: RouteHandlers, ip: string, id?: string) {
    // randomUUID() returns a rope of ~16 cons strings (~450 bytes kept per client); one flat copy is 56 bytes
    this.id = id ?? Buffer.from(randomUUID(), 'latin1').toString('latin1')
    this._core = core
    this.hub = hub
    this.socket = socket
    this.request = request
    this.params = params
    this._handlers = handlers
    this._ip = ip
    this._lastSeen = Date.now()
    this._heardAt = this._lastSeen
    this.connectedAt = this._lastSeen
  }

  /** This client as the hub stores it: the hub does not care about the params' type. */
  get #untyped (): Client {
    return this as unknown as Client
  }

  /** A child of the request's logger bound to this client's id (made on first use). */
  get log (): FastifyBaseLogger {
    this.#log ??= this.request.log.child({ clientId: this.id })
    return this.#log
  }

  /**
   * Whether this connection resumed a session with everything it missed (same id, rooms, and the
   * events sent meanwhile): only on typed routes of a hub with `recovery`. False for a new
   * session, including one given because the old could not be recovered: resync the client then.
   */
  get recovered (): boolean {
    return this._session?.recovered ?? false
  }

  /** `open`, `closing` or `closed`. */
  get state (): ClientState {
    return this._state
  }

  /** The rooms this client has joined. */
  get rooms (): ReadonlySet<string> {
    return this._rooms ?? EMPTY_ROOMS
  }

  /** Consecutive pings this client has left unanswered right now. */
  get heartbeatFailures (): number {
    return this._heartbeatFailures
  }

  /**
   * Sends one message: a string as a text frame, bytes as a binary frame, any other value as JSON
   * text. Frames reach the client in the order of the calls, broadcasts included.
   * @returns `false` when the client is not open, or is a slow consumer and the message was dropped
   * @throws {UnserializableMessageError} when the value has no JSON form
   */
  send (data: OutgoingMessage): boolean {
    if (this._state !== 'open') return false
    return this._core.writeMessage(this.#untyped, encodeMessage(data))
  }

  /**
   * Sends one event of a typed route, `{"type":T,"data":D}`, serialised by the event's compiled
   * serialiser (only the schema's properties are written). Ordered with every other frame to this client.
   * @returns `false` when the client is not open, or is a slow consumer and the event was dropped
   * @throws {UnknownEventError} when no typed route of the hub declares the type
   * @throws {InvalidEventError} when the data does not fit the event's schema (see `validateEvents`)
   */
  sendEvent<K extends EventType<TEvents>> (type: K, data: TEvents[K]): boolean {
    const message = encodeEvent(this._core, type, data)
    if (this._state !== 'open') return false
    // With a session, the event goes through its history, and comes back with its position.
    return this._core.sendEventTo(this.id, message)
  }

  /**
   * Joins a room: broadcasts with `{ room }` from this node reach it from now on, and those from
   * other nodes once the returned promise resolves (with the Redis adapter, when this node is
   * subscribed to the room: one round trip for the room's first member here). Left automatically
   * on close. Awaiting is optional; the promise never rejects.
   */
  join (room: string): Promise<void> {
    if (this._state !== 'open') return NOT_JOINED
    const joined = this._core.join(this.#untyped, room)
    const store = this._core.store
    if (this._session === undefined || store === undefined) return joined
    // The session keeps the room, from the room's position once this node receives it: a resume
    // replays the room from there.
    return joined.then(() => store.top(roomStream(room))).then((position) => {
      if (this._session !== undefined && this._rooms?.has(room) === true) store.joinSession(this.id, room, position)
    }).catch((error: unknown) => {
      this.log.warn({ err: error, room }, 'fastify-ws-hub: the session does not keep this room (the history store did not answer)')
    })
  }

  /** Leaves a room. */
  leave (room: string): void {
    if (this._rooms?.has(room) === true && this._session !== undefined) this._core.store?.leaveSession(this.id, room)
    this._core.leave(this.#untyped, room)
  }

  /**
   * Starts the close handshake. The client leaves the hub when the socket closes; `onClose` follows.
   * @param code a close code (1000 or 3000-4999 for applications); default 1000
   * @param reason at most 123 bytes of UTF-8
   */
  close (code: number = CloseCode.normal, reason?: string): void {
    if (this._state !== 'open') return
    // ws checks the code and reason and throws a TypeError for a bad one, before anything changes
    this.socket.close(code, reason)
    this._state = 'closing'
    this._closingSince = Date.now()
  }

  /** @internal destroys the TCP socket at once (the peer sees 1006) */
  _terminate (): void {
    if (this._state === 'open') {
      this._state = 'closing'
      this._closingSince = Date.now()
    }
    this.socket.terminate()
  }
}
