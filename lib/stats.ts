/** Counters of a hub, as `hub.stats()` returns them. */
export interface HubStats {
  /** Open clients in this process. */
  clients: number
  /** Rooms with at least one local member. */
  rooms: number
  /** Messages received from clients. */
  messagesIn: number
  /** Messages written to clients (one per receiver). */
  messagesOut: number
  /** Payload bytes received. */
  bytesIn: number
  /** Payload bytes written (per receiver). */
  bytesOut: number
  /** Messages not written because the receiver was a slow consumer. */
  dropped: number
  /** Clients terminated for unanswered pings. */
  heartbeatTimeouts: number
  /** Clients closed with 1008 for staying above `maxBufferedBytes` longer than `writeTimeout`. */
  slowConsumerCloses: number
  /** Clients closed with 1001 for staying silent longer than `readTimeout`. */
  idleCloses: number
  /** Clients closed with 1008 for going over `rateLimit`. */
  rateLimitCloses: number
  /** Upgrades refused with 403 for their `Origin`. */
  rejectedOrigin: number
  /** Upgrades refused with 503 for `maxConnections`, or during shutdown. */
  rejectedCapacity: number
  /** Upgrades refused with 429 for `maxConnectionsPerIp`. */
  rejectedPerIp: number
  /** Errors thrown by handlers (on an untyped route each also closes its client with 1011; a typed route's client stays open). */
  handlerErrors: number
  /** Frames a typed route refused (not JSON, not a message, unknown type, data failing its schema, binary without `onMessage`). */
  invalidMessages: number
  /** Clients closed with 1008 after `maxInvalidMessages` invalid frames. */
  invalidMessageCloses: number
  /** Sessions begun (`recovery`): new clients, and resumes that could not be recovered. */
  sessionsNew: number
  /** Sessions resumed with everything they missed (`recovery`). */
  sessionsResumed: number
  /** Sockets opened with the resume flag that got a fresh session (expired, trimmed, forged, in use, or no `$resume` frame). */
  resumesRefused: number
  /** Clients with a session closed with 1013 to resume rather than miss events (fell behind, or their node missed some). */
  recoveryCloses: number
  /** The adapter's own counters, prefixed `adapter.` (published, dropped, malformed...). */
  [adapterCounter: `adapter.${string}`]: number
}

/** The counters the hub itself keeps (everything of `HubStats` but the derived and adapter ones). */
export type HubCounters = Omit<HubStats, 'clients' | 'rooms' | `adapter.${string}`>

/** A fresh set of counters, all zero. */
export function createCounters (): HubCounters {
  return {
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dropped: 0,
    heartbeatTimeouts: 0,
    slowConsumerCloses: 0,
    idleCloses: 0,
    rateLimitCloses: 0,
    rejectedOrigin: 0,
    rejectedCapacity: 0,
    rejectedPerIp: 0,
    handlerErrors: 0,
    invalidMessages: 0,
    invalidMessageCloses: 0,
    sessionsNew: 0,
    sessionsResumed: 0,
    resumesRefused: 0,
    recoveryCloses: 0
  }
}
