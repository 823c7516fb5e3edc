import { InvalidOptionError } from '../errors.ts'
import { rejectUnknownKeys } from '../known-keys.ts'
import { isPromClientModule, type PromClientModule } from './prom-client.ts'

/** The `metrics` option: histograms, a ready `GET` route, and prom-client's registry. */
export interface MetricsOptions {
  /**
   * Path of a `GET` route that serves the metrics in the Prometheus text format (`'/metrics'`):
   * the application's whole prom-client registry when prom-client is used, else `hub.metrics()`.
   * Default: no route.
   */
  route?: string | false
  /** Put before every metric name; a valid Prometheus name start, or ''. Default `'fastify_ws_hub_'`. */
  prefix?: string
  /**
   * `'auto'` registers the hub's metrics in the default registry of the application's own
   * prom-client, when the application has it (resolved from `process.cwd()`); `false` never uses
   * prom-client; or the prom-client module itself (its namespace import, `promClient`).
   * Default `'auto'`.
   */
  promClient?: 'auto' | false | PromClientModule
}

/** The `metrics` option after defaults and checks. */
export interface ResolvedMetricsOptions {
  route: string | false
  prefix: string
  promClient: 'auto' | false | PromClientModule
}

const METRICS_KEYS: Record<keyof MetricsOptions, true> = { route: true, prefix: true, promClient: true }
const KNOWN_METRICS_OPTIONS = Object.keys(METRICS_KEYS)
/** What a metric name may start with (the prefix is its start): Prometheus's `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'string' ? JSON.stringify(value) : typeof value
}

/**
 * Checks the `metrics` option and fills its defaults.
 * @returns false when metrics are off (the default)
 * @throws {InvalidOptionError} naming the sub-option that is wrong
 */
export function resolveMetrics (value: unknown): ResolvedMetricsOptions | false {
  if (value === undefined || value === false) return false
  if (value === true) return { route: false, prefix: 'fastify_ws_hub_', promClient: 'auto' }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError('metrics', `expected true, false or an object, got ${describe(value)}`)
  }
  rejectUnknownKeys('metrics', value, KNOWN_METRICS_OPTIONS)
  const { route = false, prefix = 'fastify_ws_hub_', promClient = 'auto' } = value as MetricsOptions
  if (route !== false && (typeof route !== 'string' || !route.startsWith('/'))) {
    throw new InvalidOptionError('metrics.route', `expected a path starting with "/" or false, got ${describe(route)}`)
  }
  if (typeof prefix !== 'string' || (prefix !== '' && !METRIC_NAME.test(prefix))) {
    throw new InvalidOptionError('metrics.prefix', `expected '' or a metric name start ([a-zA-Z_:][a-zA-Z0-9_:]*), got ${describe(prefix)}`)
  }
  if (promClient !== 'auto' && promClient !== false && !isPromClientModule(promClient)) {
    throw new InvalidOptionError('metrics.promClient', `expected 'auto', false or the prom-client module (with its register), got ${describe(promClient)}`)
  }
  return { route, prefix, promClient }
}
