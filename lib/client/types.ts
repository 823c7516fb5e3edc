import type { EventsOf, MessagesOf, RepliesOf } from '../typed/types.ts'
import type { HubClientError } from './errors.ts'

/** Where a client stands: `open` only once the handshake message has arrived. */
export type ClientStatus = 'connecting' | 'open' | 'reconnecting' | 'closed'

/** What `send` takes on an untyped route: a string is a text frame, bytes a binary frame. */
export type RawData = string | ArrayBuffer | ArrayBufferView

/** Bytes for a binary frame: what `send` takes on a typed route, whose text frames are typed messages. */
export type BinaryData = ArrayBuffer | ArrayBufferView

/** A frame that is not the handshake nor a typed frame: text as a string, binary as an ArrayBuffer. */
export type IncomingData = string | ArrayBuffer

/** Calling it removes the listener it was returned for. */
export type Unsubscribe = () => void

/**
 * The names `on` keeps for the client's own life; a route cannot declare events so named (nor
 * names starting with `$`, which the wire protocol keeps for itself).
 */
export type LifecycleName = 'status' | 'message' | 'error' | 'session'

/**
 * The session the hub gave this client on a route with session recovery (the hub's `recovery`
 * option), as its last `$session` frame told it.
 */
export interface ClientSession {
  /** The client's id on the hub: the same after a recovered resume, a new one otherwise. */
  readonly id: string
  /**
   * Whether the last connection resumed the earlier session: rooms kept and missed events
   * replayed. `false` on a first connection and when the hub could not recover (a fresh session).
   */
  readonly recovered: boolean
}

/**
 * A presence event of the hub (its `presence` option): another client entered (`$join`) or left
 * (`$leave`) a presence room this client is in. Never about this client itself.
 */
export interface PresenceEvent {
  /** The presence room. */
  readonly room: string
  /** The other client's id (as `hub.presence(room)` lists it). */
  readonly id: string
  /** The params the hub shares for presence (its `presence.params` option), as JSON. */
  readonly params: Readonly<Record<string, unknown>>
}

/** The presence events a client may listen to. */
export type PresenceEventName = '$join' | '$leave'

/**
 * A method's parameters are compared both ways, so the handlers of `ws` and of the DOM, each
 * with its own event class, fit the small shapes below.
 */
type Handler<E> = { bivarianceHack (event: E): void }['bivarianceHack']

/**
 * The part of a WebSocket the client uses: the DOM's, Node 22's global, and `ws`'s all have it.
 * Declared here so that the client needs neither the DOM library nor `ws` to type-check.
 */
export interface ClientSocket {
  readonly readyState: number
  binaryType: string
  onopen: Handler<unknown> | null
  onmessage: Handler<{ data: unknown }> | null
  onclose: Handler<{ code: number, reason: string }> | null
  onerror: Handler<unknown> | null
  send (data: RawData): void
  close (code?: number, reason?: string): void
}

/** A WebSocket constructor: `globalThis.WebSocket`, or `WebSocket` from `ws` on Node 20. */
export type WebSocketConstructor = new (url: string) => ClientSocket

/** Reconnection after an abnormal close or a failed connect (see the README's reconnect rules). */
export interface ReconnectOptions {
  /** Upper bound of the first delay, in ms; each attempt doubles it. Default 500. */
  initialDelay?: number
  /** Cap of the delay's upper bound, in ms. Default 30000. */
  maxDelay?: number
  /** Attempts in a row before giving up with status `closed`. Default Infinity. */
  maxRetries?: number
}

/** Options of `createClient`. */
export interface ClientOptions {
  /** The WebSocket constructor. Default `globalThis.WebSocket` (Node 20 has none: pass `ws`'s). */
  WebSocket?: WebSocketConstructor
  /**
   * The handshake message that makes the client `open`: the exact text, a test of a text frame,
   * or `false` for a hub configured without one (open on the socket's open). Default the hub's
   * default handshake message.
   */
  handshake?: string | ((text: string) => boolean) | false
  /** Backoff of reconnection, or `false` to close for good on the first disconnection. */
  reconnect?: ReconnectOptions | false
  /** Messages kept while the client is not open. Default 100. */
  bufferSize?: number
  /** When the buffer is full: drop the oldest (counted in `dropped`, default) or throw from `send`. */
  overflow?: 'drop-oldest' | 'reject'
  /** Default timeout of `request`, in ms, counted from the call. Default 10000. */
  requestTimeout?: number
}

/** Options of one `request`. */
export interface RequestOptions {
  /** Milliseconds from the call until the request rejects with code `timeout`. */
  timeout?: number
}

/** The keys of a map as strings, none when the route declares no such map. */
type Names<T> = [T] extends [never] ? never : keyof T & string

/** The message types of a route (`typeof chatRoute`) a client may send. */
export type MessageType<Route> = Names<MessagesOf<Route>>

/** The event types of a route a client may listen to (lifecycle names are refused by the server). */
export type EventName<Route> = Exclude<Names<EventsOf<Route>>, LifecycleName>

/** The reply's data of message type `K`: the declared reply, or any JSON without one. */
export type ReplyOf<Route, K> = K extends keyof RepliesOf<Route> ? RepliesOf<Route>[K] : unknown

/**
 * A client of one hub route, typed from the route's definition (`createClient<typeof chatRoute>`),
 * or untyped (`createClient(url)`): then it sends and receives raw frames.
 */
export interface HubClient<Route = unknown> {
  /** Where the client stands; every change is told to `on('status')`. */
  readonly status: ClientStatus
  /** Messages dropped from the full buffer while away (`overflow: 'drop-oldest'`). */
  readonly dropped: number
  /**
   * The session of a route with recovery, from the last `$session` frame; `undefined` before the
   * first one (and on routes without recovery), and again after the client closed.
   */
  readonly session: ClientSession | undefined
  /** Every change of `status`. */
  on (type: 'status', listener: (status: ClientStatus) => void): Unsubscribe
  /** Frames that are neither the handshake nor typed frames, and events no listener takes. */
  on (type: 'message', listener: (data: IncomingData) => void): Unsubscribe
  /** Error frames that answer no request (e.g. `invalid_data` for a `send`). */
  on (type: 'error', listener: (error: HubClientError) => void): Unsubscribe
  /**
   * Each `$session` frame of a route with recovery: after every (re)connection, just after the
   * `open` status; `recovered` tells whether the earlier session was resumed.
   */
  on (type: 'session', listener: (session: ClientSession) => void): Unsubscribe
  /**
   * Presence events, on a hub with the `presence` option: another client entered (`$join`) or
   * left (`$leave`) one of this client's presence rooms, on any node. Not replayed on resume: ask
   * the server for the room's members again after a reconnection.
   */
  on (type: PresenceEventName, listener: (event: PresenceEvent) => void): Unsubscribe
  /** An event of the route, with its data typed from the route's `events`. */
  on<K extends EventName<Route>> (type: K, listener: (data: EventsOf<Route>[K]) => void): Unsubscribe
  /** Sends a message of the route, now or once open (buffered in order while away). */
  send<K extends MessageType<Route>> (type: K, data: MessagesOf<Route>[K]): void
  /** Sends a raw frame (a string only on untyped routes), now or once open. */
  send (data: [MessageType<Route>] extends [never] ? RawData : BinaryData): void
  /**
   * Sends a message with an id and resolves the reply's data; rejects with a `HubClientError`
   * whose code is the error frame's, `timeout`, `closed` (disconnected while waiting) or `overflow`.
   */
  request<K extends MessageType<Route>> (type: K, data: MessagesOf<Route>[K], options?: RequestOptions): Promise<ReplyOf<Route, K>>
  /** Closes for good: no reconnection, status `closed`, pending requests rejected, session forgotten. */
  close (code?: number, reason?: string): void
}
