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
import { inRoom, roomSet, type ClientRooms } from './client-rooms.ts'
import { ClientRare } from './client-rare.ts'

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
  /** The params `onUpgrade` returned; undefined until first asked for when there were none (then `{}`). */
  #params: TParams | undefined
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
  /** @internal none, one room's name, or a set from the second room on (see client-rooms.ts) */
  _rooms: ClientRooms
  /** @internal */ _heartbeatFailures = 0
  /** @internal */ _awaitingPong = false
  /** @internal last time a message or pong arrived, or a handler was running */
  _lastSeen: number
  /** @internal when the client was first seen above maxBufferedBytes; 0 when it is not */
  _slowSince = 0
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
  /** @internal remote address, kept to release its per-IP slot ('' when addresses are not counted) */
  _ip: string
  /** @internal its session, on a typed route of a hub with `recovery` */
  _session: ClientSession | undefined
  /** @internal last time a message or a pong arrived (not a handler's end): what proves the socket alive */
  _heardAt: number
  /** What most clients never set (see ClientRare); undefined until the first write of one of its fields. */
  #rare: ClientRare | undefined

  /** @internal clients are created by the hub when an upgrade succeeds */
  constructor (core: HubCore, hub: Hub<TEvents>, socket: WebSocket, request: TRequest, params: TParams | undefined, handlers: RouteHandlers, ip: string, id?: string) {
    // randomUUID() returns a rope of ~16 cons strings (~450 bytes kept per client); one flat copy is 56 bytes
    this.id = id ?? Buffer.from(randomUUID(), 'latin1').toString('latin1')
    this._core = core
    this.hub = hub
    this.socket = socket
    this.request = request
    this.#params = params
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

  /**
   * The custom params `onUpgrade` returned, typed from the route's `params` schema (`{}` without
   * `onUpgrade`). Always the same object for a client.
   */
  get params (): TParams {
    // Most routes have no onUpgrade: their clients make no empty object until one is asked for.
    this.#params ??= {} as TParams
    return this.#params
  }

  /** A child of the request's logger bound to this client's id (made on first use). */
  get log (): FastifyBaseLogger {
    const rare = this.#more()
    rare.log ??= this.request.log.child({ clientId: this.id })
    return rare.log
  }

  #more (): ClientRare {
    this.#rare ??= new ClientRare()
    return this.#rare
  }

  // The fields of ClientRare, under the names the rest of the hub uses: reads of an unset one give its default.
  /** @internal messages read while a handler was running */
  get _queue (): QueuedMessage[] | undefined { return this.#rare?.queue }
  set _queue (value: QueuedMessage[] | undefined) { this.#more().queue = value }
  /** @internal onError already ran */
  get _errored (): boolean { return this.#rare?.errored ?? false }
  set _errored (value: boolean) { this.#more().errored = value }
  /** @internal when a server-side close began; 0 while open */
  get _closingSince (): number { return this.#rare?.closingSince ?? 0 }
  set _closingSince (value: number) { this.#more().closingSince = value }
  /** @internal the close code, kept until onClose runs */
  get _closeCode (): number { return this.#rare?.closeCode ?? CloseCode.abnormal }
  set _closeCode (value: number) { this.#more().closeCode = value }
  /** @internal the close reason, kept until onClose runs */
  get _closeReason (): string { return this.#rare?.closeReason ?? '' }
  set _closeReason (value: string) { this.#more().closeReason = value }
  /** @internal the close code ws sent for a protocol error; 0 if none */
  get _protocolCloseCode (): number { return this.#rare?.protocolCloseCode ?? 0 }
  set _protocolCloseCode (value: number) { this.#more().protocolCloseCode = value }
  /** @internal start of the current rate-limit window */
  get _windowStart (): number { return this.#rare?.windowStart ?? 0 }
  set _windowStart (value: number) { this.#more().windowStart = value }
  /** @internal messages in the current rate-limit window */
  get _windowCount (): number { return this.#rare?.windowCount ?? 0 }
  set _windowCount (value: number) { this.#more().windowCount = value }
  /** @internal invalid frames sent to a typed route */
  get _invalidMessages (): number { return this.#rare?.invalidMessages ?? 0 }
  set _invalidMessages (value: number) { this.#more().invalidMessages = value }
  /** @internal a ping is out to see whether the socket is alive */
  get _probing (): boolean { return this.#rare?.probing ?? false }
  set _probing (value: boolean) { this.#more().probing = value }

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
    return roomSet(this) ?? EMPTY_ROOMS
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
      if (this._session !== undefined && inRoom(this, room)) store.joinSession(this.id, room, position)
    }).catch((error: unknown) => {
      this.log.warn({ err: error, room }, 'fastify-ws-hub: the session does not keep this room (the history store did not answer)')
    })
  }

  /** Leaves a room. */
  leave (room: string): void {
    if (this._session !== undefined && inRoom(this, room)) this._core.store?.leaveSession(this.id, room)
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
    this._core.closesBegun++
  }

  /** @internal destroys the TCP socket at once (the peer sees 1006) */
  _terminate (): void {
    if (this._state === 'open') {
      this._state = 'closing'
      this._closingSince = Date.now()
      this._core.closesBegun++
    }
    this.socket.terminate()
  }
}
