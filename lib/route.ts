import type { Static, TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import type { FastifyInstance, FastifyRequest, FastifySchema, RouteShorthandOptions } from 'fastify'
import type { WebSocket, WebSocketServer } from 'ws'
import { Client, type ClientParams } from './client.ts'
import { CloseCode } from './constants.ts'
import { InvalidParamsError, InvalidRouteError, ShuttingDownError } from './errors.ts'
import { releaseAdmission, settleAdmission } from './admission.ts'
import { compressionOf } from './deflate.ts'
import { directStreamOf } from './fanout.ts'
import { rejectUnknownKeys } from './known-keys.ts'
import { shareHeaderStrings } from './shared-strings.ts'
import type { Hub } from './hub.ts'
import type { HubCore } from './hub-core.ts'
import { openClient, type RouteHandlers } from './read-loop.ts'
import { openWithSession } from './recovery/open.ts'
import { compileTypedRoute, type MessageHandlers, type NoSchemas, type ReplySchemas, type RouteEvents, type SchemaMap } from './typed/index.ts'

type StaticOf<T> = T extends TSchema ? Static<T> : unknown

/** The upgrade request as `onUpgrade` sees it: query, params and headers typed from the route's TypeBox `schema`. */
export type HubUpgradeRequest<S extends FastifySchema = FastifySchema> = FastifyRequest<{
  Querystring: StaticOf<S['querystring']>
  Params: StaticOf<S['params']>
  Headers: StaticOf<S['headers']>
}>

/** The params of a route that declares neither `params` nor `onUpgrade`: none. */
export type NoParams = Record<string, never>

/** Fastify's own route options that a hub route takes (its `onError` is the client hook below). */
export type HubRouteFastifyOptions = Omit<RouteShorthandOptions, 'onError' | 'schema' | 'handler' | 'websocket' | 'wsHandler'>

/** The client of a route, as its hooks and handlers see it: params, upgrade request and events typed from the route. */
export type RouteClient<TParams extends ClientParams, S extends FastifySchema, E extends SchemaMap> = Client<TParams, HubUpgradeRequest<S>, RouteEvents<E>>

/**
 * Options of `hub.route()`.
 * @typeParam TParams the client's custom params (from `params`, or what `onUpgrade` returns)
 * @typeParam S the Fastify schema of the upgrade request
 * @typeParam M incoming message schemas by type (`messages`)
 * @typeParam E outgoing event schemas by type (`events`)
 * @typeParam R reply schemas by incoming message type (`replies`)
 */
export interface HubRouteOptions<
  TParams extends ClientParams = NoParams,
  S extends FastifySchema = FastifySchema,
  M extends SchemaMap = NoSchemas,
  E extends SchemaMap = NoSchemas,
  R extends ReplySchemas<M> = NoSchemas
> extends HubRouteFastifyOptions {
  /** Path of the websocket route (Fastify syntax, under the calling plugin's prefix). */
  url: string
  /** Fastify validation of the upgrade request (querystring, headers, params); failures answer 400. */
  schema?: S
  /** TypeBox schema of the client's custom params; `onUpgrade`'s result is checked against it. */
  params?: TSchema & { static: TParams }
  /**
   * Runs before the upgrade, after Fastify's validation and hooks; returns the client's custom
   * params. Throw an error with a `statusCode` (401, 403...) to refuse: nothing is upgraded.
   */
  onUpgrade?: (request: HubUpgradeRequest<S>) => TParams | Promise<TParams>
  /**
   * Incoming message types and the TypeBox schema of each one's `data`: the route becomes typed.
   * Its text frames are JSON messages `{"type", "data", "id"?}`, checked and handed to `handlers`.
   */
  messages?: M
  /** Outgoing event types and the TypeBox schema of each one's `data`, for `sendEvent` and `broadcastEvent`. */
  events?: E
  /** Reply schemas by incoming message type, for handlers whose return value answers a message with an `id`. */
  replies?: R
  /**
   * One handler per message type, given the checked `data`; run one at a time per client, in order.
   * Its return value (or what its promise resolves to) is the reply when the message carried an `id`.
   * One that throws answers an error frame and calls `onError`; the client stays open.
   */
  // Without messages there is nothing to handle: `never` rather than `{}`, which would take any object.
  handlers?: NoInfer<[keyof M] extends [never] ? never : MessageHandlers<M, R, RouteClient<TParams, S, E>>>
  /** Runs once the client is registered and has been sent the handshake message. */
  onOpen?: (client: RouteClient<TParams, S, E>) => void | Promise<void>
  /**
   * Runs for each message, one at a time per client: text as a string, binary as a Buffer. On a
   * typed route (one with `messages`) it gets the binary frames only.
   */
  onMessage?: (client: RouteClient<TParams, S, E>, data: string | Buffer, isBinary: boolean) => void | Promise<void>
  /**
   * Runs when a handler fails or the socket fails. On an untyped route it runs at most once, and a
   * handler error then closes the client with 1011; on a typed route it runs for each failed
   * message handler, and the client stays open.
   */
  onError?: (client: RouteClient<TParams, S, E>, error: Error) => void | Promise<void>
  /** Runs exactly once per opened client, after it has left the hub and its rooms. */
  onClose?: (client: RouteClient<TParams, S, E>, code: number, reason: string) => void | Promise<void>
}

type Hook = NonNullable<RouteShorthandOptions['onRequest']>
type HandlerHook = NonNullable<RouteShorthandOptions['preHandler']>
type ResponseHook = NonNullable<RouteShorthandOptions['onResponse']>

function hooksOf<T> (hooks: T | T[] | undefined): T[] {
  if (hooks === undefined) return []
  return Array.isArray(hooks) ? hooks : [hooks]
}

/**
 * Lets go of what @fastify/websocket leaves on an upgraded socket for its whole life: the
 * ServerResponse it assigned to the TCP socket (about 350 bytes and a closure), and the error
 * listener it added last, just before calling the hub, whose closure holds the request's Reply.
 * The hub reports socket errors itself (onError, once). Measured: about 1.6 KB less per client.
 * The socket also leaves the ws server's client set: the hub tracks it, and closes it at shutdown
 * with 1001, even when a @fastify/websocket registered before the hub closes that set's members
 * without a code first. The request, which the client keeps, lets go of the upgrade's head
 * (a slice that holds the whole request's bytes, about 350 bytes), which only the upgrade used,
 * and shares its header strings with other requests.
 */
function releaseUpgradeLeftovers (socket: WebSocket, server: WebSocketServer, raw: FastifyRequest['raw']): void {
  // ws's close listener (a closure per socket) only takes the socket out of that set again: the
  // first one, as ws adds it before it hands the socket over.
  if (server.clients?.delete(socket) === true) {
    const tracking = socket.listeners('close')[0]
    if (tracking !== undefined) socket.removeListener('close', tracking as (...args: unknown[]) => void)
  }
  for (const key of Object.getOwnPropertySymbols(raw)) {
    // Set, not deleted: deleting a property would turn the request into a slower, larger dictionary.
    if (key.description === 'ws-head') (raw as unknown as Record<symbol, unknown>)[key] = undefined
  }
  shareHeaderStrings(raw)
  const tcp = (socket as unknown as { _socket?: { _httpMessage?: { detachSocket (target: unknown): void } | null } })._socket
  tcp?._httpMessage?.detachSocket(tcp)
  const errorListeners = socket.listeners('error')
  const added = errorListeners[errorListeners.length - 1]
  if (added !== undefined) socket.removeListener('error', added as (...args: unknown[]) => void)
}

/** Route options as the registration code reads them, whatever their static types. */
export type AnyHubRouteOptions = HubRouteOptions<ClientParams, FastifySchema, SchemaMap, SchemaMap, ReplySchemas<SchemaMap>>

/** Params returned by `onUpgrade`, kept from the hook to the upgrade. */
const upgradeParams = new WeakMap<FastifyRequest, ClientParams>()

// Typed as a record so that a key Fastify adds to its route options fails the build until it is listed.
const ROUTE_OPTION_KEYS: Record<keyof HubRouteOptions, true> = {
  url: true,
  schema: true,
  params: true,
  onUpgrade: true,
  onOpen: true,
  onMessage: true,
  onError: true,
  onClose: true,
  messages: true,
  events: true,
  replies: true,
  handlers: true,
  attachValidation: true,
  exposeHeadRoute: true,
  validatorCompiler: true,
  serializerCompiler: true,
  bodyLimit: true,
  handlerTimeout: true,
  logLevel: true,
  logSerializers: true,
  config: true,
  constraints: true,
  prefixTrailingSlash: true,
  errorHandler: true,
  childLoggerFactory: true,
  schemaErrorFormatter: true,
  onRequest: true,
  preParsing: true,
  preValidation: true,
  preHandler: true,
  preSerialization: true,
  onSend: true,
  onResponse: true,
  onTimeout: true,
  onRequestAbort: true
}
const KNOWN_ROUTE_OPTIONS = Object.keys(ROUTE_OPTION_KEYS)

function invalidRoute (name: string, reason: string): Error {
  return new InvalidRouteError(name, reason)
}

function checkRouteOptions (options: AnyHubRouteOptions): void {
  if (typeof options !== 'object' || options === null) throw new InvalidRouteError('options', 'expected an object')
  rejectUnknownKeys('', options, KNOWN_ROUTE_OPTIONS, invalidRoute)
  if (typeof options.url !== 'string') throw new InvalidRouteError('url', 'expected a string')
  for (const hook of ['onUpgrade', 'onOpen', 'onMessage', 'onError', 'onClose'] as const) {
    if (options[hook] !== undefined && typeof options[hook] !== 'function') {
      throw new InvalidRouteError(hook, 'expected a function')
    }
  }
}

/**
 * Compiles the route's `params` schema. It checks what the server's own `onUpgrade` returns, so it
 * must come with one; and it must be TypeBox, which also gives `client.params` its static type.
 * @throws {InvalidRouteError} naming `params`
 */
function compileParams (params: unknown, onUpgrade: unknown): TypeCheck<TSchema> | undefined {
  if (params === undefined) return undefined
  if (typeof params !== 'object' || params === null) throw new InvalidRouteError('params', 'expected a TypeBox schema')
  if (onUpgrade === undefined) {
    throw new InvalidRouteError('params', 'a params schema needs onUpgrade, which returns the params; without it client.params is always {}')
  }
  try {
    return TypeCompiler.Compile(params as TSchema)
  } catch (error) {
    throw new InvalidRouteError('params', 'expected a TypeBox schema (Type.Object(...) from fastify-ws-hub or @sinclair/typebox) ' +
      `throughout; a plain JSON Schema is not supported (${(error as Error).message})`)
  }
}

/**
 * Registers a hub websocket route on `instance` (so the calling plugin's prefix, hooks and
 * decorators apply). The admission hook runs first, Fastify's validation and the user's hooks
 * next, `onUpgrade` last; only then is the socket upgraded and the client opened.
 */
export function registerHubRoute (
  instance: FastifyInstance,
  core: HubCore,
  hub: Hub,
  admission: Hook,
  options: AnyHubRouteOptions
): void {
  checkRouteOptions(options)
  const {
    url, params, onUpgrade, onOpen, onMessage, onError, onClose, messages, events, replies, handlers: typedHandlers,
    onRequest, preHandler, onResponse, ...fastifyOptions
  } = options
  const paramsCheck = compileParams(params, onUpgrade)
  const typed = compileTypedRoute(core, { messages, events, replies, handlers: typedHandlers, onMessage })
  const handlers = { onOpen, onMessage: typed === undefined ? onMessage : typed.onMessage, onError, onClose, typed: messages !== undefined } as RouteHandlers

  async function releaseRefusedUpgrade (request: FastifyRequest): Promise<void> {
    if (request.ws) releaseAdmission(core, request)
  }

  async function runOnUpgrade (request: FastifyRequest): Promise<void> {
    if (!request.ws || onUpgrade === undefined) return
    const result: unknown = await onUpgrade(request as HubUpgradeRequest)
    if (core.closing) throw new ShuttingDownError()
    if (typeof result !== 'object' || result === null) {
      throw new InvalidParamsError(`expected an object, got ${result === null ? 'null' : typeof result}`)
    }
    if (paramsCheck !== undefined && !paramsCheck.Check(result)) {
      const first = paramsCheck.Errors(result).First()
      throw new InvalidParamsError(`${first?.path ?? ''} ${first?.message ?? ''}`.trim())
    }
    upgradeParams.set(request, result)
  }

  // Recovery covers typed routes: their events are JSON frames that can carry a position.
  const store = typed === undefined ? undefined : core.store

  function hubConnection (socket: WebSocket, request: FastifyRequest): void {
    if (core.closing) {
      releaseAdmission(core, request)
      socket.close(CloseCode.goingAway, 'server shutdown')
      return
    }
    releaseUpgradeLeftovers(socket, instance.websocketServer, request.raw)
    // Without onUpgrade's params the client makes its empty `{}` when first asked for it.
    const clientParams = onUpgrade === undefined ? undefined : upgradeParams.get(request) as Record<string, unknown> | undefined
    const compression = compressionOf(socket, request.raw, core.sharedDeflate)
    const create = (id: string | undefined, ip: string): Client => {
      const client = new Client(core, core.hub ?? hub, socket, request, clientParams, handlers, ip, id)
      // A socket with context takeover is left to ws: only its own deflate stream can compress for it.
      if (compression !== 'per-socket') {
        client._raw = directStreamOf(socket)
        client._deflate = compression === 'none' ? undefined : compression
      }
      return client
    }
    if (store !== undefined) {
      const admission = { settle: () => settleAdmission(core, request), release: () => releaseAdmission(core, request) }
      openWithSession(core, store, socket, request.raw.url, clientParams ?? {}, admission, create)
      return
    }
    openClient(create(undefined, settleAdmission(core, request)))
  }

  instance.route({
    ...fastifyOptions,
    method: 'GET',
    url,
    schema: options.schema,
    onRequest: [admission, ...hooksOf<Hook>(onRequest as Hook | Hook[] | undefined)] as Hook,
    onResponse: [releaseRefusedUpgrade, ...hooksOf<ResponseHook>(onResponse as ResponseHook | ResponseHook[] | undefined)] as ResponseHook,
    // Without onUpgrade there is nothing to wait for: no async hook (and its promise) per upgrade.
    preHandler: [...hooksOf<HandlerHook>(preHandler as HandlerHook | HandlerHook[] | undefined), ...(onUpgrade === undefined ? [] : [runOnUpgrade])] as HandlerHook,
    websocket: true,
    handler: hubConnection
  })
  typed?.commit(instance.prefix + url)
}
