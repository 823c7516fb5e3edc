import createError, { type FastifyErrorConstructor } from '@fastify/error'

/**
 * An error class of this package: its code, HTTP status and message arguments are in its type.
 * Named here (not left as `createError.FastifyErrorConstructor` in the emitted declarations) so
 * that the declarations type-check for consumers on any module resolution, `bundler` included.
 */
export type HubErrorConstructor<C extends string, S extends number, A extends unknown[]> = FastifyErrorConstructor<{ code: C, statusCode: S }, A>

/** Makes an error class with @fastify/error, typed as a `HubErrorConstructor`. */
export function defineError<C extends string, S extends number, A extends unknown[]> (
  code: C, message: string, statusCode: S, Base?: ErrorConstructor
): HubErrorConstructor<C, S, A> {
  return createError<C, S, A>(code, message, statusCode, Base)
}

/** Thrown at registration when an option is missing its mark; the message names the option. */
export const InvalidOptionError = defineError<'FST_WS_HUB_INVALID_OPTION', 500, [string, string]>(
  'FST_WS_HUB_INVALID_OPTION', 'Invalid fastify-ws-hub option "%s": %s', 500, TypeError)

/** Thrown by `hub.route()` when a route option is wrong; the message names the option. */
export const InvalidRouteError = defineError<'FST_WS_HUB_INVALID_ROUTE', 500, [string, string]>(
  'FST_WS_HUB_INVALID_ROUTE', 'Invalid hub route option "%s": %s', 500, TypeError)

/** The params returned by `onUpgrade` do not match the route's `params` schema (a server bug: 500). */
export const InvalidParamsError = defineError<'FST_WS_HUB_INVALID_PARAMS', 500, [string]>(
  'FST_WS_HUB_INVALID_PARAMS', 'onUpgrade returned params that do not match the route schema: %s', 500)

/** A value given to `send` or `broadcast` cannot be turned into a websocket message. */
export const UnserializableMessageError = defineError<'FST_WS_HUB_UNSERIALIZABLE', 500, [string]>(
  'FST_WS_HUB_UNSERIALIZABLE', 'Cannot send this value as a websocket message: %s', 500, TypeError)

/** A handler threw something that is not an `Error`; this wraps it so `onError` always gets an Error. */
export const HandlerError = defineError<'FST_WS_HUB_HANDLER_ERROR', 500, [string]>(
  'FST_WS_HUB_HANDLER_ERROR', 'A hub handler threw a non-Error value: %s', 500)

/** The plugin was registered twice on the same instance. */
export const AlreadyRegisteredError = defineError<'FST_WS_HUB_ALREADY_REGISTERED', 500, []>(
  'FST_WS_HUB_ALREADY_REGISTERED', 'fastify-ws-hub is already registered on this instance', 500)

/** The upgrade's `Origin` is not allowed (cross-site WebSocket hijacking defence). */
export const OriginForbiddenError = defineError<'FST_WS_HUB_ORIGIN_FORBIDDEN', 403, [string]>(
  'FST_WS_HUB_ORIGIN_FORBIDDEN', 'Origin %s may not open a websocket here', 403)

/** `maxConnections` is reached. */
export const TooManyConnectionsError = defineError<'FST_WS_HUB_TOO_MANY_CONNECTIONS', 503, []>(
  'FST_WS_HUB_TOO_MANY_CONNECTIONS', 'The websocket hub is at its connection limit', 503)

/** `maxConnectionsPerIp` is reached for the caller's address. */
export const TooManyConnectionsPerIpError = defineError<'FST_WS_HUB_TOO_MANY_CONNECTIONS_PER_IP', 429, []>(
  'FST_WS_HUB_TOO_MANY_CONNECTIONS_PER_IP', 'Too many websocket connections from this address', 429)

/** The upgrade's hooks finished after `app.close()` began: it is refused rather than opened and closed at once. */
export const ShuttingDownError = defineError<'FST_WS_HUB_SHUTTING_DOWN', 503, []>(
  'FST_WS_HUB_SHUTTING_DOWN', 'The websocket hub is shutting down', 503)

/** @fastify/websocket was registered after the hub, which had registered it already. */
export const WebsocketAfterHubError = defineError<'FST_WS_HUB_WEBSOCKET_AFTER_HUB', 500, []>(
  'FST_WS_HUB_WEBSOCKET_AFTER_HUB',
  '@fastify/websocket was registered after fastify-ws-hub, which registers it when it is missing: register @fastify/websocket before the hub (the hub then uses it and its options), or leave it to the hub and pass its options as the hub\'s `websocket` option',
  500)

/** `sendEvent` or `broadcastEvent` named an event type that no typed route of the hub declares. */
export const UnknownEventError = defineError<'FST_WS_HUB_UNKNOWN_EVENT', 500, [string, string]>(
  'FST_WS_HUB_UNKNOWN_EVENT', 'No typed route of this hub declares the event "%s" (declared: %s)', 500, TypeError)

/** An event's (or a reply's) data does not match its schema, checked with `validateEvents` or found by its serialiser. */
export const InvalidEventError = defineError<'FST_WS_HUB_INVALID_EVENT', 500, [string, string]>(
  'FST_WS_HUB_INVALID_EVENT', 'The data of "%s" does not match its schema: %s', 500, TypeError)

/** A cluster-wide operation's argument is wrong (a target that is neither an id nor `{ room }`, a close code ws refuses). */
export const InvalidArgumentError = defineError<'FST_WS_HUB_INVALID_ARGUMENT', 500, [string, string]>(
  'FST_WS_HUB_INVALID_ARGUMENT', 'Invalid argument "%s": %s', 500, TypeError)

const NodesTimeoutBase = defineError<'FST_WS_HUB_NODES_TIMEOUT', 504, [number, number]>(
  'FST_WS_HUB_NODES_TIMEOUT', '%d node(s) did not answer within %d ms', 504)

/**
 * Some nodes did not answer a cluster-wide operation (`fetchClients`, `join`, `leave`,
 * `disconnect` with a target on other nodes) in time: a node that hangs, or one whose link to the
 * others fails without a close. A node that is gone (its process ended) is not waited for. What
 * the nodes that answered gave is on the error.
 */
export class NodesTimeoutError extends NodesTimeoutBase {
  /** Nodes that did not answer. */
  readonly missing: number
  /** Ids of the nodes that answered, this one first. */
  readonly answered: readonly string[]
  /** For `fetchClients`: the clients of the nodes that answered; for the others: the clients acted on. */
  readonly partial: unknown

  constructor (missing: number, timeout: number, answered: readonly string[], partial: unknown) {
    super(missing, timeout)
    this.missing = missing
    this.answered = answered
    this.partial = partial
  }
}
/** `hub.presence(room)` for a room without presence: the hub has no `presence` option, or `presence.rooms` refuses the room. */
export const NotPresenceRoomError = defineError<'FST_WS_HUB_NOT_PRESENCE_ROOM', 500, [string, string]>(
  'FST_WS_HUB_NOT_PRESENCE_ROOM', 'Room "%s" has no presence: %s', 500)
