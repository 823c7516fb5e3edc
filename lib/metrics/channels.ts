import { channel, tracingChannel, type Channel, type TracingChannel } from 'node:diagnostics_channel'
import type { Client } from '../client.ts'

/**
 * The `node:diagnostics_channel` names the hub publishes on. Each is published only while someone
 * subscribes (`channel.hasSubscribers`), so that they cost nothing otherwise.
 */
export const ChannelName = {
  /** A client opened (registered, greeted): `ConnectionOpenMessage`. */
  connectionOpen: 'fastify-ws-hub:connection:open',
  /** A client's socket closed (it left the hub; its `onClose` follows): `ConnectionCloseMessage`. */
  connectionClose: 'fastify-ws-hub:connection:close',
  /** A frame arrived from a client, before any check: `MessageInMessage`. */
  messageIn: 'fastify-ws-hub:message:in',
  /** A message was written to a client (once per receiver of a broadcast): `MessageOutMessage`. */
  messageOut: 'fastify-ws-hub:message:out',
  /**
   * The `tracingChannel` around each message handler (typed or `onMessage`): its `start`, `end`,
   * `asyncStart`, `asyncEnd` and `error` channels are `tracing:fastify-ws-hub:handler:<event>`, with a
   * `HandlerTraceContext`. The handler runs inside `start.runStores`, so a tracer that binds a
   * store there (OpenTelemetry) keeps its span across the handler's awaits.
   */
  handler: 'fastify-ws-hub:handler'
} as const

/** Published on `fastify-ws-hub:connection:open`. */
export interface ConnectionOpenMessage {
  /** The client that opened: its `id`, `params`, `request` (headers, ip), `hub`. */
  readonly client: Client
}

/** Published on `fastify-ws-hub:connection:close`. */
export interface ConnectionCloseMessage {
  /** The client that closed; it has left the hub and its rooms. */
  readonly client: Client
  /** The close code its `onClose` gets (1006 for a socket that ended without a close frame). */
  readonly code: number
  /** The close reason its `onClose` gets ('' for none). */
  readonly reason: string
}

/** Published on `fastify-ws-hub:message:in`. */
export interface MessageInMessage {
  /** The client that sent it. */
  readonly client: Client
  /** The frame's payload as received: not to be modified or kept past the call. */
  readonly data: Buffer
  /** A binary frame (`true`) or a text frame (`false`). */
  readonly isBinary: boolean
}

/** Published on `fastify-ws-hub:message:out`. */
export interface MessageOutMessage {
  /** The client it was written to. */
  readonly client: Client
  /** The frame's payload, shared by every receiver of a broadcast: not to be modified. */
  readonly data: Buffer
  /** A binary frame (`true`) or a text frame (`false`). */
  readonly isBinary: boolean
}

/**
 * The context object of the `fastify-ws-hub:handler` tracing channel: the same object on each of
 * its events, with `result` or `error` set before the event that follows them.
 */
export interface HandlerTraceContext {
  /** The client whose message is handled. */
  readonly client: Client
  /** The message type on a typed route; `onMessage` for an untyped route and for binary frames. */
  readonly type: string
  /** What the handler got: the checked data of a typed message, else the frame (string or Buffer). */
  readonly data: unknown
  /** What the handler returned (resolved to, for an async one). */
  result?: unknown
  /** What the handler threw (rejected with). */
  error?: unknown
}

// The channel objects the hub publishes on (subscribers find them by name), typed explicitly so
// that the declarations import `node:diagnostics_channel` as the sources do.
/** Channel of `ChannelName.connectionOpen`. */
export const connectionOpenChannel: Channel = channel(ChannelName.connectionOpen)
/** Channel of `ChannelName.connectionClose`. */
export const connectionCloseChannel: Channel = channel(ChannelName.connectionClose)
/** Channel of `ChannelName.messageIn`. */
export const messageInChannel: Channel = channel(ChannelName.messageIn)
/** Channel of `ChannelName.messageOut`. */
export const messageOutChannel: Channel = channel(ChannelName.messageOut)
/** Tracing channel of `ChannelName.handler`. */
export const handlerChannel: TracingChannel<unknown, HandlerTraceContext> = tracingChannel<unknown, HandlerTraceContext>(ChannelName.handler)
