import type { FastifyInstance, FastifySchema, onRequestHookHandler } from 'fastify'
import type { Client, ClientParams } from './client.ts'
import type { HubCore, TypedRouteDescription } from './hub-core.ts'
import { encodeMessage, type EncodedMessage, type OutgoingMessage } from './message.ts'
import { registerHubRoute, type AnyHubRouteOptions, type HubRouteOptions, type NoParams } from './route.ts'
import type { HubStats } from './stats.ts'
import type { ClientInfo } from './control/client-info.ts'
import type { NodeMessageHandler } from './control/cluster-control.ts'
import type { ControlTarget } from './control/targets.ts'
import { CloseCode } from './constants.ts'
import { NotPresenceRoomError } from './errors.ts'
import type { PresenceMember } from './presence/store.ts'
import {
  buildAsyncApi,
  encodeEvent,
  type AsyncApiDocument,
  type AsyncApiInfo,
  type AsyncApiOptions,
  type EventType,
  type HubEvents,
  type NoSchemas,
  type ReplySchemas,
  type SchemaMap
} from './typed/index.ts'

/** Who a broadcast reaches. */
export interface BroadcastOptions {
  /** Only members of this room, or of any of these rooms (each client once). */
  room?: string | readonly string[]
  /**
   * A client (or client id) that must not receive it, typically the sender. Any client, whatever
   * its route's params and events (only its `id` is read).
   */
  except?: { readonly id: string } | string
}

/** Which clients `fetchClients` lists, and how long it waits for the other nodes. */
export interface FetchClientsOptions {
  /** Only the members of this room. */
  room?: string
  /** Ms to wait for the other nodes' answers; default the hub's `controlTimeout`. */
  timeout?: number
}

/** A broadcast's rooms and excepted client id, from its options. */
function audienceOf (options: BroadcastOptions | undefined): { rooms: readonly string[] | undefined, exceptId: string | undefined } {
  const room = options?.room
  const except = options?.except
  return {
    rooms: room === undefined ? undefined : typeof room === 'string' ? [room] : room,
    exceptId: except === undefined ? undefined : typeof except === 'string' ? except : except.id
  }
}

/**
 * The hub, as `fastify.hub` and `client.hub`. Every encapsulation context sees its own view of
 * the one hub of the app: they share clients, rooms and counters, and `route()` registers the
 * route in the context whose view it is called on (its prefix, hooks and decorators).
 * @typeParam TEvents the events `broadcastEvent` takes: `HubEvents` on `app.hub`, a route's own
 * `events` on `client.hub` inside that route's hooks and handlers
 */
export class Hub<TEvents extends object = HubEvents> {
  readonly #core: HubCore
  readonly #instance: FastifyInstance
  readonly #admission: onRequestHookHandler

  /** @internal views are made by the plugin */
  constructor (core: HubCore, instance: FastifyInstance, admission: onRequestHookHandler) {
    this.#core = core
    this.#instance = instance
    this.#admission = admission
  }

  /** @internal a view of the same hub for another encapsulation context */
  _viewFor (instance: FastifyInstance): Hub {
    return new Hub(this.#core, instance, this.#admission)
  }

  /** This process's open clients, by id. */
  get clients (): ReadonlyMap<string, Client> {
    return this.#core.clients
  }

  /**
   * The schemas of every typed route of the hub (full path, messages, events, replies), in
   * registration order: what a protocol document (AsyncAPI) or a client generator is built from.
   */
  get typedRoutes (): readonly TypedRouteDescription[] {
    return this.#core.typedRoutes
  }

  /**
   * An AsyncAPI 3.0 document of every typed route registered so far (call it after `ready()`):
   * a channel per route at its full path (`:param` as `{param}`), a `receive` operation per message
   * type whose reply is the reply frame (any JSON where no reply schema is declared) or an error
   * frame, a `send` operation per event type and one for error frames. Message payloads are whole
   * frames (`{"type","data","id"?}`), their `data` the route's TypeBox schema as JSON Schema.
   * A new plain object on each call.
   * @param info the document's info, over the default `{ title: 'fastify-ws-hub', version: '1.0.0' }`
   * @param options the servers the document names (`{ production: { host: 'chat.example.com', protocol: 'wss' } }`)
   */
  asyncapi (info?: Partial<AsyncApiInfo>, options?: AsyncApiOptions): AsyncApiDocument {
    return buildAsyncApi(this.#core.typedRoutes, info, options)
  }

  /** Unique id of this node (process) in the cluster. */
  get nodeId (): string {
    return this.#core.nodeId
  }

  /** Number of open clients in this process (the seed's `GetOnlineClients`). */
  onlineCount (): number {
    return this.#core.clients.size
  }

  /** Number of open clients on every node of the cluster (equals `onlineCount()` on one process). */
  clusterCount (): Promise<number> {
    return this.#core.adapter.clusterCount()
  }

  /** Local members of a room. */
  roomSize (room: string): number {
    return this.#core.roomSize(room)
  }

  /** Members of a room on every node of the cluster. */
  clusterRoomSize (room: string): Promise<number> {
    return this.#core.adapter.clusterRoomSize(room)
  }

  /**
   * Sends a message to every open client (or to the members of `room`), on every node. The value is
   * serialised and framed once, whatever the number of receivers; slow consumers are skipped and
   * counted in `stats().dropped`.
   * @returns the number of local clients it was written to
   * @throws {UnserializableMessageError} when the value has no JSON form
   */
  broadcast (data: OutgoingMessage, options?: BroadcastOptions): number {
    return this.#broadcastEncoded(encodeMessage(data), options)
  }

  /**
   * Sends an event of the typed routes, `{"type":T,"data":D}`, to every open client (or to the
   * members of `room`) on every node, as `broadcast` does: serialised once by the event's compiled
   * serialiser, framed once per node. It reaches the clients of every route, typed or not.
   * @returns the number of local clients it was written to
   * @throws {UnknownEventError} when no typed route of the hub declares the type
   * @throws {InvalidEventError} when the data does not fit the event's schema (see `validateEvents`)
   */
  broadcastEvent<K extends EventType<TEvents>> (type: K, data: TEvents[K], options?: BroadcastOptions): number {
    const message = encodeEvent(this.#core, type, data)
    const core = this.#core
    if (core.store === undefined) return this.#broadcastEncoded(message, options)
    // With recovery the event is recorded first and delivered, here too, with its position in
    // the history: at once on the memory adapter, after a round trip to Redis on the Redis one.
    const { rooms, exceptId } = audienceOf(options)
    const before = core.counters.messagesOut
    if (core.store.record({ kind: 'broadcast', payload: message.payload, binary: false, rooms, except: exceptId })) {
      return core.counters.messagesOut - before
    }
    // The store is unreachable: this node's clients still get it, without a position (nothing to replay).
    return core.deliverLocal(message, rooms, exceptId)
  }

  /**
   * Sends an event of the typed routes to one client, wherever in the cluster it is connected.
   * With `recovery`, to a client with a session, it is kept in the client's history: a client
   * away (reconnecting) gets it when it resumes.
   * @returns true when it was written to a local client, or handed to the other nodes or the history
   * @throws {UnknownEventError} when no typed route of the hub declares the type
   * @throws {InvalidEventError} when the data does not fit the event's schema (see `validateEvents`)
   */
  sendEventTo<K extends EventType<TEvents>> (clientId: string, type: K, data: TEvents[K]): boolean {
    return this.#core.sendEventTo(clientId, encodeEvent(this.#core, type, data))
  }

  #broadcastEncoded (message: EncodedMessage, options: BroadcastOptions | undefined): number {
    const { rooms, exceptId } = audienceOf(options)
    const core = this.#core
    // Handed to the other nodes first: the publish then leaves ahead of this node's own socket
    // writes (the adapter's flush is queued before the fan-out's uncork), as the other nodes'
    // clients have the longer way to go.
    core.adapter.publish({ kind: 'broadcast', payload: message.payload, binary: message.binary, rooms, except: exceptId })
    return core.deliverLocal(message, rooms, exceptId)
  }

  /**
   * Sends a message to one client, wherever in the cluster it is connected.
   * @returns true when it was written to a local client or handed to the other nodes
   * @throws {UnserializableMessageError} when the value has no JSON form
   */
  sendTo (clientId: string, data: OutgoingMessage): boolean {
    const core = this.#core
    const message = encodeMessage(data)
    const client = core.clients.get(clientId)
    if (client !== undefined) return core.writeMessage(client, message)
    return core.adapter.publish({ kind: 'send', to: clientId, payload: message.payload, binary: message.binary })
  }

  /**
   * The open clients of every node of the cluster, or the members of a room: id, node, route,
   * rooms, params (as JSON) and when each connected. A node that has ended is not waited for.
   * @throws {NodesTimeoutError} `FST_WS_HUB_NODES_TIMEOUT` when some node did not answer within
   *   the timeout; its `partial` holds the clients of the nodes that did
   */
  fetchClients<TParams = Record<string, unknown>> (options: FetchClientsOptions = {}): Promise<Array<ClientInfo<TParams>>> {
    const timeout = options.timeout ?? this.#core.options.controlTimeout
    return this.#core.control.fetchClients(options.room, timeout) as Promise<Array<ClientInfo<TParams>>>
  }

  /**
   * Makes a client (by id) or every member of `{ room }` join a room, on whichever node each is.
   * Resolves once all of them have joined and their nodes receive the room's broadcasts.
   * @returns the number of clients that were told to join
   * @throws {NodesTimeoutError} when a node that holds targets did not answer within `controlTimeout`
   * @throws {InvalidArgumentError} for a target that is neither an id nor `{ room }`
   */
  join (target: ControlTarget, room: string): Promise<number> {
    return this.#core.control.joinOrLeave('join', target, room, this.#core.options.controlTimeout)
  }

  /**
   * Makes a client (by id) or every member of `{ room }` leave a room, on whichever node each is.
   * @returns the number of clients that were told to leave
   * @throws {NodesTimeoutError} when a node that holds targets did not answer within `controlTimeout`
   */
  leave (target: ControlTarget, room: string): Promise<number> {
    return this.#core.control.joinOrLeave('leave', target, room, this.#core.options.controlTimeout)
  }

  /**
   * Closes a client (by id) or every member of `{ room }`, on whichever node each is, with a close
   * code and reason; their `onClose` hooks run as for any close.
   * @param code 1000 (default) or an application code 3000-4999
   * @param reason at most 123 bytes of UTF-8
   * @returns the number of clients it closed
   * @throws {InvalidArgumentError} for another code, a longer reason, or a bad target
   * @throws {NodesTimeoutError} when a node that holds targets did not answer within `controlTimeout`
   */
  disconnect (target: ControlTarget, code: number = CloseCode.normal, reason = ''): Promise<number> {
    return this.#core.control.disconnect(target, code, reason, this.#core.options.controlTimeout)
  }

  /**
   * Sends a message to the other nodes' hubs (not to clients, not to this node): a cache to drop,
   * settings to reload. Their `onNodeMessage(type)` handlers get it, in the order sent.
   * @param data any value with a JSON form; handlers get its JSON copy
   * @returns false when it could not leave this node (no other node, Redis down)
   * @throws {InvalidArgumentError} for an empty type
   * @throws {TypeError} for data with no JSON form
   */
  emitToNodes (type: string, data?: unknown): boolean {
    return this.#core.control.emitToNodes(type, data)
  }

  /**
   * Handles the messages other nodes send with `emitToNodes(type)`. A handler that throws or
   * rejects is logged and counted in `handlerErrors`; the other handlers still run.
   * @returns a function that removes the handler
   */
  onNodeMessage<T = unknown> (type: string, handler: NodeMessageHandler<T>): () => void {
    return this.#core.control.onNodeMessage(type, handler as NodeMessageHandler)
  }

  /**
   * The members of a presence room on every live node of the cluster (id, node, shared params,
   * since when), in no particular order. Members of a node that died are gone within its lease.
   * @throws {NotPresenceRoomError} (rejects) when the hub has no `presence` option or `presence.rooms` refuses the room
   * @throws (rejects) the adapter's error when its store cannot be read (`RedisUnavailableError`)
   */
  async presence (room: string): Promise<PresenceMember[]> {
    const presence = this.#core.presence
    if (presence === undefined) throw new NotPresenceRoomError(room, 'the hub has no presence option')
    if (!presence.covers(room)) throw new NotPresenceRoomError(room, 'presence.rooms does not include it')
    return await presence.members(room)
  }

  /** The hub's counters. */
  stats (): HubStats {
    return this.#core.stats()
  }

  /**
   * The hub's metrics in the Prometheus text exposition format 0.0.4 (docs/metrics.md): gauges
   * and counters always, the histograms with the `metrics` option.
   */
  metrics (): Promise<string> {
    return this.#core.exporter.render()
  }

  /**
   * Registers a websocket route in this view's encapsulation context. With `messages` it is a
   * typed route: its text frames are checked JSON messages dispatched to `handlers`.
   * @throws {InvalidRouteError} naming the route option that is wrong
   */
  route<
    TParams extends ClientParams = NoParams,
    const S extends FastifySchema = FastifySchema,
    M extends SchemaMap = NoSchemas,
    E extends SchemaMap = NoSchemas,
    R extends ReplySchemas<M> = NoSchemas
  > (options: HubRouteOptions<TParams, S, M, E, R>): this {
    registerHubRoute(this.#instance, this.#core, this as Hub, this.#admission, options as unknown as AnyHubRouteOptions)
    return this
  }
}
