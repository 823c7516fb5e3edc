import type { FastifyRequest } from 'fastify'
import type { WebsocketPluginOptions } from '@fastify/websocket'
import type { HubAdapter } from './adapters/adapter.ts'
import type { Client } from './client.ts'
import { WebsocketHandshakeSuccess, WebsocketServerPingMsg } from './constants.ts'
import { InvalidOptionError } from './errors.ts'
import { rejectUnknownKeys } from './known-keys.ts'
import type { RecoveryLimits } from './recovery/store.ts'
import { resolveMetrics, type MetricsOptions, type ResolvedMetricsOptions } from './metrics/index.ts'

/** What a handshake message may be: fixed text or bytes, or built per client. */
export type HandshakeMessage = string | Buffer | ((client: Client) => string | Buffer)

/**
 * Which browser origins may open a socket. A string matches an origin exactly
 * (`'https://app.example.com'`), a RegExp is tested against it, a function decides;
 * `'*'` allows every origin.
 */
export type AllowedOrigins =
  | '*'
  | string
  | RegExp
  | ReadonlyArray<string | RegExp>
  | ((origin: string, request: FastifyRequest) => boolean)

/** Server heartbeat settings. */
export interface HeartbeatOptions {
  /** Milliseconds between two pings to every client. Default 20000 (the seed's `pingPeriod`). */
  interval?: number
  /** Consecutive unanswered pings after which a client is terminated. Default 4. */
  maxFailures?: number
  /** Payload of each ping frame, at most 125 bytes. Default `WebsocketServerPingMsg`. */
  payload?: string | Buffer
}

/** Per-client message rate limit. */
export interface RateLimitOptions {
  /** Messages allowed per window. */
  max: number
  /** Window length in milliseconds. */
  windowMs: number
}

/** Options of `app.register(fastifyWsHub, options)`. Every one is optional. */
export interface FastifyWsHubOptions {
  /** Server heartbeat; `false` turns it off. */
  heartbeat?: HeartbeatOptions | false
  /** Message sent to each client once it is registered; `false` sends none. */
  handshakeMessage?: HandshakeMessage | false
  /** Largest message accepted, in bytes; a larger one closes the client with 1009. Default 65535. */
  maxPayload?: number
  /** Milliseconds of silence (no message, no pong) after which a client is closed with 1001; 0 = off. Default 100000. */
  readTimeout?: number
  /** Milliseconds a client may stay above `maxBufferedBytes` before it is closed with 1008. Default 35000. */
  writeTimeout?: number
  /**
   * Unsent bytes above which a client is a slow consumer: a client that still holds more than this
   * (bytes the kernel has not taken) when an event-loop turn first writes to it is skipped for that
   * turn, its messages dropped and counted. Default 1 MiB.
   */
  maxBufferedBytes?: number
  /**
   * Bytes one event-loop turn may add past `maxBufferedBytes` to a client that was not slow when
   * the turn began (a loop of sends, a history replay): a client's unsent bytes never exceed
   * `maxBufferedBytes + maxBurstBytes` (plus the message that crossed it). Default 8 MiB.
   */
  maxBurstBytes?: number
  /** Milliseconds `app.close()` waits for close handshakes before it terminates the rest. Default 3000. */
  shutdownTimeout?: number
  /**
   * Milliseconds a client may take to send its request headers, upgrades included (slowloris
   * defence). The plugin lowers the HTTP server's `headersTimeout` to it, when higher, and checks
   * every second; `false` leaves the server as it is. Default 5000.
   */
  headersTimeout?: number | false
  /** Browser origins allowed to connect. Default: an `Origin` must match the request's own host. */
  allowedOrigins?: AllowedOrigins
  /** Open clients allowed in this process; further upgrades get 503. Default: no limit. */
  maxConnections?: number
  /** Open clients allowed per remote IP (honours Fastify's `trustProxy`); further upgrades get 429. Default: no limit. */
  maxConnectionsPerIp?: number
  /** Messages a client may send per window; over it the client is closed with 1008. Default: no limit. */
  rateLimit?: RateLimitOptions | false
  /** How hubs of several processes reach each other. Default: an in-memory adapter (one process). */
  adapter?: HubAdapter
  /**
   * Invalid frames a client of a typed route may send (bad JSON, unknown type, data failing its
   * schema...); the one that reaches it gets its error frame, then the client is closed with 1008.
   * Default 10.
   */
  maxInvalidMessages?: number
  /**
   * Checks every event (and declared reply) against its schema before it is sent, and throws
   * `FST_WS_HUB_INVALID_EVENT` for one that does not match. For development: it costs a check per
   * message. Default false (the serialiser then writes only the schema's properties, coercing what it can).
   */
  validateEvents?: boolean
  /**
   * Session recovery for typed routes: a client that reconnects within `maxDisconnection`, to any
   * node, gets back its id, its rooms and every event it missed meanwhile (README "Session
   * recovery"). Needs an adapter with a history store (the memory and Redis adapters have one).
   * `true` takes the defaults. Default false.
   */
  recovery?: RecoveryOptions | boolean
  /**
   * Ms a cluster-wide operation (`fetchClients`, and `join`, `leave`, `disconnect` of clients on
   * other nodes) waits for the nodes' answers before it rejects with `FST_WS_HUB_NODES_TIMEOUT`.
   * Default 5000.
   */
  controlTimeout?: number
  /**
   * Prometheus metrics (docs/metrics.md): histograms of broadcast fan-out and handler durations,
   * an optional `GET` route, and the registration of the hub's metrics in the application's
   * prom-client. `true` takes the defaults. Default false: `hub.metrics()` then has the counters
   * and gauges only.
   */
  metrics?: MetricsOptions | boolean
  /**
   * Presence for the rooms it names: `hub.presence(room)` lists their members on every node, and
   * their members get `$join` / `$leave` events when others enter or leave (docs/presence.md).
   * Needs an adapter with a presence store (the memory and Redis adapters have one). Default off.
   */
  presence?: PresenceOptions
  /** Options for @fastify/websocket when this plugin registers it. */
  websocket?: WebsocketPluginOptions
}

/** Bounds of session recovery. */
export interface RecoveryOptions {
  /** Ms a session outlives its connection: a client that comes back later gets a fresh one. Default 120000. */
  maxDisconnection?: number
  /** Events kept per stream (all, each room, each client): a client that missed more gets a fresh session. Default 10000. */
  maxMessages?: number
}

/** Which rooms have presence, and what of a member it shares. */
export interface PresenceOptions {
  /** Whether a room has presence; called at every join and leave, so keep it cheap (a prefix test). */
  rooms: (room: string) => boolean
  /**
   * The keys of `client.params` a member shares with the room (`['userId']`), in `hub.presence()`
   * and in `$join` events; values must be JSON. Default none: a member is its client id.
   */
  params?: readonly string[]
}

/** Options after defaults and checks: what the hub runs on. */
export interface ResolvedHubOptions {
  heartbeat: { interval: number, maxFailures: number, payload: Buffer } | false
  handshakeMessage: HandshakeMessage | false
  maxPayload: number
  readTimeout: number
  writeTimeout: number
  maxBufferedBytes: number
  maxBurstBytes: number
  shutdownTimeout: number
  headersTimeout: number | false
  allowedOrigins: AllowedOrigins | undefined
  maxConnections: number
  maxConnectionsPerIp: number
  rateLimit: RateLimitOptions | false
  adapter: HubAdapter | undefined
  maxInvalidMessages: number
  validateEvents: boolean
  recovery: RecoveryLimits | false
  controlTimeout: number
  metrics: ResolvedMetricsOptions | false
  presence: Required<PresenceOptions> | false
  websocket: WebsocketPluginOptions
}

const MAX_PING_PAYLOAD = 125

/**
 * A heartbeat faster than this is most likely seconds written where milliseconds are meant
 * (`interval: 20`); tests use such intervals on purpose, so it is a warning, not a refusal.
 */
const FAST_HEARTBEAT_MS = 1_000

/** What an `Origin` header holds: `scheme://host[:port]`, no path, query, fragment or credentials. */
const ORIGIN_FORM = /^[a-z][a-z0-9+.-]*:\/\/[^/?#@\s]+$/i

// Typed as records so that an option added to an interface and forgotten here fails the build.
const HUB_OPTION_KEYS: Record<keyof FastifyWsHubOptions, true> = {
  heartbeat: true,
  handshakeMessage: true,
  maxPayload: true,
  readTimeout: true,
  writeTimeout: true,
  maxBufferedBytes: true,
  maxBurstBytes: true,
  shutdownTimeout: true,
  headersTimeout: true,
  allowedOrigins: true,
  maxConnections: true,
  maxConnectionsPerIp: true,
  rateLimit: true,
  adapter: true,
  maxInvalidMessages: true,
  validateEvents: true,
  recovery: true,
  controlTimeout: true,
  metrics: true,
  presence: true,
  websocket: true
}
const RECOVERY_KEYS: Record<keyof RecoveryOptions, true> = { maxDisconnection: true, maxMessages: true }
const PRESENCE_KEYS: Record<keyof PresenceOptions, true> = { rooms: true, params: true }
const HEARTBEAT_KEYS: Record<keyof HeartbeatOptions, true> = { interval: true, maxFailures: true, payload: true }
const RATE_LIMIT_KEYS: Record<keyof RateLimitOptions, true> = { max: true, windowMs: true }

/**
 * Fastify 5 hands the plugin its register options as given, its own included: these must pass.
 * `websocket` is not checked further: @fastify/websocket and ws own its keys.
 */
const FASTIFY_REGISTER_KEYS = ['prefix', 'logLevel', 'logSerializers']

const KNOWN_OPTIONS = [...Object.keys(HUB_OPTION_KEYS), ...FASTIFY_REGISTER_KEYS]
const KNOWN_HEARTBEAT_OPTIONS = Object.keys(HEARTBEAT_KEYS)
const KNOWN_RATE_LIMIT_OPTIONS = Object.keys(RATE_LIMIT_KEYS)
const KNOWN_RECOVERY_OPTIONS = Object.keys(RECOVERY_KEYS)
const KNOWN_PRESENCE_OPTIONS = Object.keys(PRESENCE_KEYS)

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value)
}

function positiveNumber (name: string, value: unknown, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (value === 0 && !allowZero)) {
    throw new InvalidOptionError(name, `expected a ${allowZero ? 'non-negative' : 'positive'} finite number, got ${describe(value)}`)
  }
  return value
}

function wholeNumber (name: string, value: unknown, fallback: number, minimum: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum) {
    throw new InvalidOptionError(name, `expected a whole number >= ${minimum}, got ${describe(value)}`)
  }
  return value
}

function resolveFlag (name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw new InvalidOptionError(name, `expected true or false, got ${describe(value)}`)
  return value
}

function describe (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'function') return 'a function'
  if (Array.isArray(value)) return 'an array'
  if (value === null) return 'null'
  return typeof value === 'object' ? 'an object' : String(value)
}

function resolveHeartbeat (value: unknown): ResolvedHubOptions['heartbeat'] {
  if (value === false) return false
  if (value !== undefined && !isPlainObject(value)) {
    throw new InvalidOptionError('heartbeat', `expected an object or false, got ${describe(value)}`)
  }
  const heartbeat = value ?? {}
  rejectUnknownKeys('heartbeat', heartbeat, KNOWN_HEARTBEAT_OPTIONS)
  const payload = heartbeat.payload ?? WebsocketServerPingMsg
  if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) {
    throw new InvalidOptionError('heartbeat.payload', `expected a string or Buffer, got ${describe(payload)}`)
  }
  const payloadBytes = Buffer.from(payload)
  if (payloadBytes.length > MAX_PING_PAYLOAD) {
    throw new InvalidOptionError('heartbeat.payload', `a ping payload holds at most ${MAX_PING_PAYLOAD} bytes (RFC 6455), got ${payloadBytes.length}`)
  }
  return {
    interval: positiveNumber('heartbeat.interval', heartbeat.interval, 20_000),
    maxFailures: wholeNumber('heartbeat.maxFailures', heartbeat.maxFailures, 4, 1),
    payload: payloadBytes
  }
}

function resolveHandshake (value: unknown): HandshakeMessage | false {
  if (value === undefined) return WebsocketHandshakeSuccess
  if (value === false || typeof value === 'string' || typeof value === 'function' || Buffer.isBuffer(value)) {
    return value as HandshakeMessage | false
  }
  throw new InvalidOptionError('handshakeMessage', `expected a string, Buffer, function or false, got ${describe(value)}`)
}

/**
 * An allowed origin is compared with the `Origin` header as written: a string that no browser
 * can send (`'example.com'`, a path, a trailing slash, upper case, a default port) would answer
 * every upgrade 403, so it is refused here, with the form that would match when there is one.
 */
function checkOriginString (name: string, origin: string): void {
  if (origin === '*') {
    if (name === 'allowedOrigins') return
    throw new InvalidOptionError(name, "'*' allows every origin only on its own, not in an array")
  }
  if (!ORIGIN_FORM.test(origin)) {
    throw new InvalidOptionError(name, `${describe(origin)} is not an origin: expected scheme://host[:port] without a path, as browsers send it in the Origin header (e.g. "https://app.example.com")`)
  }
  // For web schemes URL gives the origin a browser sends; other schemes (app://, chrome-extension://) it leaves opaque.
  const web = /^(https?|wss?):/i.test(origin) ? URL.canParse(origin) && new URL(origin).origin : origin
  if (web !== origin) {
    throw new InvalidOptionError(name, `${describe(origin)} never matches: ${web === false ? 'it is not a valid URL' : `browsers send "${web}"`}`)
  }
}

function resolveOrigins (value: unknown): AllowedOrigins | undefined {
  if (value === undefined) return undefined
  const valid = (entry: unknown): boolean => typeof entry === 'string' || entry instanceof RegExp
  if (valid(value) || typeof value === 'function' || (Array.isArray(value) && value.every(valid))) {
    if (typeof value === 'string') checkOriginString('allowedOrigins', value)
    if (Array.isArray(value)) {
      value.forEach((entry, index) => { if (typeof entry === 'string') checkOriginString(`allowedOrigins[${index}]`, entry) })
    }
    return value as AllowedOrigins
  }
  throw new InvalidOptionError('allowedOrigins', `expected '*', a string, a RegExp, an array of them or a function, got ${describe(value)}`)
}

function resolveRateLimit (value: unknown): RateLimitOptions | false {
  if (value === undefined || value === false) return false
  if (!isPlainObject(value)) {
    throw new InvalidOptionError('rateLimit', `expected { max, windowMs } or false, got ${describe(value)}`)
  }
  rejectUnknownKeys('rateLimit', value, KNOWN_RATE_LIMIT_OPTIONS)
  return {
    max: wholeNumber('rateLimit.max', value.max ?? Number.NaN, 0, 1),
    windowMs: positiveNumber('rateLimit.windowMs', value.windowMs ?? Number.NaN, 0)
  }
}

function resolveRecovery (value: unknown, adapter: HubAdapter | undefined): RecoveryLimits | false {
  if (value === undefined || value === false) return false
  if (value !== true && !isPlainObject(value)) {
    throw new InvalidOptionError('recovery', `expected { maxDisconnection, maxMessages }, true or false, got ${describe(value)}`)
  }
  const given = value === true ? {} : value
  rejectUnknownKeys('recovery', given, KNOWN_RECOVERY_OPTIONS)
  if (adapter !== undefined && adapter.recovery === undefined) {
    throw new InvalidOptionError('recovery', 'the adapter keeps no history (it has no recovery store): use the memory or Redis adapter, or turn recovery off')
  }
  return {
    maxDisconnection: wholeNumber('recovery.maxDisconnection', given.maxDisconnection, 120_000, 1),
    maxMessages: wholeNumber('recovery.maxMessages', given.maxMessages, 10_000, 1)
  }
}

function resolvePresence (value: unknown, adapter: HubAdapter | undefined): Required<PresenceOptions> | false {
  if (value === undefined) return false
  if (!isPlainObject(value)) {
    throw new InvalidOptionError('presence', `expected { rooms, params? }, got ${describe(value)}`)
  }
  rejectUnknownKeys('presence', value, KNOWN_PRESENCE_OPTIONS)
  if (typeof value.rooms !== 'function') {
    throw new InvalidOptionError('presence.rooms', `expected a function (room) => boolean that tells which rooms have presence, got ${describe(value.rooms)}`)
  }
  const params = value.params ?? []
  if (!Array.isArray(params) || !params.every(key => typeof key === 'string' && key !== '')) {
    throw new InvalidOptionError('presence.params', `expected an array of client.params keys (non-empty strings), got ${describe(params)}`)
  }
  if (adapter !== undefined && adapter.presence === undefined) {
    throw new InvalidOptionError('presence', 'the adapter keeps no presence (it has no presence store): use the memory or Redis adapter, or turn presence off')
  }
  return { rooms: value.rooms as (room: string) => boolean, params: [...params] as string[] }
}

function resolveAdapter (value: unknown): HubAdapter | undefined {
  if (value === undefined) return undefined
  const adapter = value as Partial<HubAdapter>
  for (const method of ['start', 'publish', 'clusterCount', 'clusterRoomSize', 'close'] as const) {
    if (typeof adapter?.[method] !== 'function') {
      throw new InvalidOptionError('adapter', `an adapter must implement ${method}()`)
    }
  }
  return value as HubAdapter
}

/**
 * Checks the user's options and fills in the defaults (the seed's, in milliseconds).
 * @throws {InvalidOptionError} naming the first option that is wrong
 */
export function resolveOptions (options: FastifyWsHubOptions = {}): ResolvedHubOptions {
  if (!isPlainObject(options)) {
    throw new InvalidOptionError('options', `expected an object, got ${describe(options)}`)
  }
  rejectUnknownKeys('', options, KNOWN_OPTIONS)
  const given: FastifyWsHubOptions = options
  if (given.websocket !== undefined && !isPlainObject(given.websocket)) {
    throw new InvalidOptionError('websocket', `expected an object, got ${describe(given.websocket)}`)
  }
  const heartbeat = resolveHeartbeat(given.heartbeat)
  const readTimeout = positiveNumber('readTimeout', given.readTimeout, 100_000, true)
  if (heartbeat !== false && readTimeout !== 0 && readTimeout <= heartbeat.interval) {
    const which = given.readTimeout === undefined ? ', the default' : ''
    throw new InvalidOptionError('readTimeout', `${readTimeout} ms${which} is not longer than heartbeat.interval (${heartbeat.interval} ms): ` +
      'a healthy idle client answers a ping only once per interval, so it would be closed as idle; ' +
      'make readTimeout several intervals long, or 0 to turn it off')
  }
  const adapter = resolveAdapter(given.adapter)
  return {
    heartbeat,
    handshakeMessage: resolveHandshake(given.handshakeMessage),
    maxPayload: wholeNumber('maxPayload', given.maxPayload, 65_535, 1),
    readTimeout,
    writeTimeout: positiveNumber('writeTimeout', given.writeTimeout, 35_000),
    maxBufferedBytes: wholeNumber('maxBufferedBytes', given.maxBufferedBytes, 1024 * 1024, 1),
    maxBurstBytes: wholeNumber('maxBurstBytes', given.maxBurstBytes, 8 * 1024 * 1024, 0),
    shutdownTimeout: positiveNumber('shutdownTimeout', given.shutdownTimeout, 3_000),
    headersTimeout: given.headersTimeout === false ? false : positiveNumber('headersTimeout', given.headersTimeout, 5_000),
    allowedOrigins: resolveOrigins(given.allowedOrigins),
    maxConnections: wholeNumber('maxConnections', given.maxConnections, Number.MAX_SAFE_INTEGER, 1),
    maxConnectionsPerIp: wholeNumber('maxConnectionsPerIp', given.maxConnectionsPerIp, Number.MAX_SAFE_INTEGER, 1),
    rateLimit: resolveRateLimit(given.rateLimit),
    adapter,
    maxInvalidMessages: wholeNumber('maxInvalidMessages', given.maxInvalidMessages, 10, 1),
    validateEvents: resolveFlag('validateEvents', given.validateEvents, false),
    recovery: resolveRecovery(given.recovery, adapter),
    controlTimeout: positiveNumber('controlTimeout', given.controlTimeout, 5_000),
    metrics: resolveMetrics(given.metrics),
    presence: resolvePresence(given.presence, adapter),
    websocket: given.websocket ?? {}
  }
}

/**
 * Settings that are valid but probably not what was meant, each as a sentence for the log.
 * Registration goes on: a test may want a 50 ms heartbeat, a production server almost never.
 */
export function optionWarnings (resolved: ResolvedHubOptions): string[] {
  const warnings: string[] = []
  const heartbeat = resolved.heartbeat
  if (heartbeat !== false && heartbeat.interval < FAST_HEARTBEAT_MS) {
    const perSecond = Math.round(1_000 / heartbeat.interval * 10) / 10
    warnings.push(`fastify-ws-hub: heartbeat.interval is ${heartbeat.interval} ms, about ${perSecond} pings a second per client; ` +
      'the interval is in milliseconds (the default is 20000)')
  }
  return warnings
}
