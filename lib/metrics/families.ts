import type { HubCounters, HubStats } from '../stats.ts'
import type { ConnectionCounts } from './close-codes.ts'
import type { Histogram } from './histogram.ts'
import type { HubMetrics } from './recorder.ts'

/** The Prometheus types the hub's metrics are of. */
export type MetricType = 'counter' | 'gauge' | 'histogram'

/** One line of a metric family: a sample name (the family's, or `_bucket`, `_sum`, `_count`), labels and value. */
export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>> | undefined
  readonly value: number
}

/** A metric family: what one `# HELP` and `# TYPE` pair heads. */
export interface MetricFamily {
  readonly name: string
  readonly help: string
  readonly type: MetricType
  readonly samples: readonly Sample[]
}

/** What the hub's metrics are read from: the hub core, seen only through what it counts. */
export interface MetricsSource {
  stats (): HubStats
  readonly connections: ConnectionCounts
  readonly metrics: HubMetrics | undefined
}

/** How one of the hub's own counters is exposed: its name (without the prefix) and help, or a label of a shared family. */
type CounterName = { readonly name: string, readonly help: string, readonly labels?: Readonly<Record<string, string>> }

const REJECTED = 'upgrades_rejected_total'
const REJECTED_HELP = 'Upgrades refused before the websocket opened, by reason (origin 403, capacity 503, per_ip 429).'

// Typed as a record so that a counter added to HubCounters and forgotten here fails the build.
const COUNTERS: Record<keyof HubCounters, CounterName> = {
  messagesIn: { name: 'messages_received_total', help: 'Messages received from clients.' },
  messagesOut: { name: 'messages_sent_total', help: 'Messages written to clients (one per receiver).' },
  bytesIn: { name: 'received_bytes_total', help: 'Payload bytes received from clients.' },
  bytesOut: { name: 'sent_bytes_total', help: 'Payload bytes written to clients (per receiver).' },
  dropped: { name: 'messages_dropped_total', help: 'Messages not written because the receiver was a slow consumer.' },
  heartbeatTimeouts: { name: 'heartbeat_terminations_total', help: 'Clients terminated for unanswered pings.' },
  slowConsumerCloses: { name: 'slow_consumer_closes_total', help: 'Clients closed with 1008 for staying above maxBufferedBytes longer than writeTimeout.' },
  idleCloses: { name: 'idle_closes_total', help: 'Clients closed with 1001 for staying silent longer than readTimeout.' },
  rateLimitCloses: { name: 'rate_limit_closes_total', help: 'Clients closed with 1008 for going over rateLimit.' },
  rejectedOrigin: { name: REJECTED, help: REJECTED_HELP, labels: { reason: 'origin' } },
  rejectedCapacity: { name: REJECTED, help: REJECTED_HELP, labels: { reason: 'capacity' } },
  rejectedPerIp: { name: REJECTED, help: REJECTED_HELP, labels: { reason: 'per_ip' } },
  handlerErrors: { name: 'handler_errors_total', help: 'Errors thrown or rejected by handlers.' },
  invalidMessages: { name: 'invalid_messages_total', help: 'Frames a typed route refused (not JSON, unknown type, data failing its schema...).' },
  invalidMessageCloses: { name: 'invalid_message_closes_total', help: 'Clients closed with 1008 after maxInvalidMessages invalid frames.' },
  sessionsNew: { name: 'sessions_new_total', help: 'Sessions begun (recovery): new clients, and resumes that could not be recovered.' },
  sessionsResumed: { name: 'sessions_resumed_total', help: 'Sessions resumed with everything they missed (recovery).' },
  resumesRefused: { name: 'resumes_refused_total', help: 'Sockets opened to resume that got a fresh session instead (recovery).' },
  recoveryCloses: { name: 'recovery_closes_total', help: 'Clients closed with 1013 to resume rather than miss events (recovery).' }
}

/**
 * Adapter stats that are a level now, not a count since start (the Redis adapter's "Now" ones):
 * gauges. Every other adapter stat is a counter.
 */
const ADAPTER_GAUGES = new Set(['publishers', 'pendingBytes', 'subscriptions'])

/** An adapter stat's name as a metric name part: `receivedBytes` → `received_bytes`; anything outside `[a-z0-9_]` becomes `_`. */
export function snakeCase (name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase().replace(/[^a-z0-9_]/g, '_')
}

function familyOf (families: Map<string, { name: string, help: string, type: MetricType, samples: Sample[] }>, name: string, help: string, type: MetricType): Sample[] {
  let family = families.get(name)
  if (family === undefined) {
    family = { name, help, type, samples: [] }
    families.set(name, family)
  }
  return family.samples
}

/** The samples of one histogram (cumulative buckets, `+Inf`, sum, count) with its labels. */
function histogramSamples (samples: Sample[], name: string, histogram: Histogram, labels: Readonly<Record<string, string>> = {}): void {
  let cumulative = 0
  histogram.bounds.forEach((bound, index) => {
    cumulative += histogram.counts[index] as number
    samples.push({ name: `${name}_bucket`, labels: { ...labels, le: String(bound) }, value: cumulative })
  })
  samples.push({ name: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: histogram.count })
  const plain = Object.keys(labels).length === 0 ? undefined : labels
  samples.push({ name: `${name}_sum`, labels: plain, value: histogram.sum })
  samples.push({ name: `${name}_count`, labels: plain, value: histogram.count })
}

/**
 * Every metric of the hub now, as families: the gauges and counters of `hub.stats()`, connections
 * by close code, the adapter's stats, and the histograms when metrics are on.
 * @param prefix put before every name (`fastify_ws_hub_`)
 */
export function collectFamilies (source: MetricsSource, prefix: string): MetricFamily[] {
  const families = new Map<string, { name: string, help: string, type: MetricType, samples: Sample[] }>()
  const stats = source.stats()
  familyOf(families, `${prefix}connections`, 'Open websocket clients in this process.', 'gauge')
    .push({ name: `${prefix}connections`, labels: undefined, value: stats.clients })
  familyOf(families, `${prefix}rooms`, 'Rooms with at least one local member.', 'gauge')
    .push({ name: `${prefix}rooms`, labels: undefined, value: stats.rooms })
  const connections = source.connections
  familyOf(families, `${prefix}connections_opened_total`, 'Websocket clients opened.', 'counter')
    .push({ name: `${prefix}connections_opened_total`, labels: undefined, value: connections.opened })
  const closed = familyOf(families, `${prefix}connections_closed_total`,
    'Websocket clients closed, by close code (1000-1015 as such; 3000-3999 as 3xxx, 4000-4999 as 4xxx).', 'counter')
  for (const [code, count] of connections.closed) closed.push({ name: `${prefix}connections_closed_total`, labels: { code }, value: count })

  for (const key of Object.keys(COUNTERS) as Array<keyof HubCounters>) {
    const { name, help, labels } = COUNTERS[key]
    familyOf(families, prefix + name, help, 'counter').push({ name: prefix + name, labels, value: stats[key] })
  }

  for (const key of Object.keys(stats)) {
    if (!key.startsWith('adapter.')) continue
    const stat = key.slice('adapter.'.length)
    const gauge = ADAPTER_GAUGES.has(stat)
    const name = `${prefix}adapter_${snakeCase(stat)}${gauge ? '' : '_total'}`
    familyOf(families, name, `The adapter's ${stat} (hub.stats() "${key}").`, gauge ? 'gauge' : 'counter')
      .push({ name, labels: undefined, value: stats[key as `adapter.${string}`] as number })
  }

  const metrics = source.metrics
  if (metrics !== undefined) {
    const fanOut = `${prefix}broadcast_fanout_seconds`
    histogramSamples(familyOf(families, fanOut, 'Seconds to write one broadcast to the local clients (this node\'s broadcasts and other nodes\').', 'histogram'), fanOut, metrics.fanOut)
    const delay = `${prefix}broadcast_delivery_delay_seconds`
    histogramSamples(familyOf(families, delay, 'Seconds from a broadcast\'s publish on another node to its delivery here (wall clocks, millisecond resolution).', 'histogram'), delay, metrics.deliveryDelay)
    const handler = `${prefix}handler_duration_seconds`
    const samples = familyOf(families, handler, 'Seconds message handlers took (until an async one settled), by message type (onMessage for untyped handlers).', 'histogram')
    for (const [type, histogram] of metrics.handlers) histogramSamples(samples, handler, histogram, { type })
  }
  return [...families.values()]
}
