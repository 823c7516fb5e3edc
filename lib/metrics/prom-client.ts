import { createRequire } from 'node:module'
import type { FastifyBaseLogger } from 'fastify'
import { collectFamilies, type MetricFamily, type MetricsSource, type MetricType } from './families.ts'

/** One sample as prom-client's registry reads it from a metric's `get()`. */
export interface PromSampleValue {
  /** The sample's value. */
  readonly value: number
  /** Its labels (`{}` for none). */
  readonly labels: Readonly<Record<string, string>>
  /** The sample name when it is not the family's (`_bucket`, `_sum`, `_count`). */
  readonly metricName?: string
}

/** A metric family as prom-client's registry reads it from a metric's `get()`. */
export interface PromMetricValues {
  readonly name: string
  readonly help: string
  readonly type: MetricType
  /** How prom-client's cluster mode merges workers' values. */
  readonly aggregator: 'sum'
  readonly values: readonly PromSampleValue[]
}

/**
 * What the hub registers in a prom-client registry for each of its metric families: an object
 * with prom-client's metric shape (`name`, `help`, `type`, `get()`), whose `get()` reads the hub's
 * counters and histograms at scrape time.
 */
export interface PromCollector {
  /** The family's name; prom-client's OpenMetrics rendering takes `_total` off a counter's (and puts it back on its samples). */
  name: string
  readonly help: string
  readonly type: MetricType
  readonly aggregator: 'sum'
  /** The family's samples now. */
  get (): Promise<PromMetricValues>
  /** Does nothing: the hub's counters live as long as the hub. */
  reset (): void
}

/** The part of a prom-client `Registry` the hub uses. */
export interface PromRegistry {
  /**
   * Adds a metric; prom-client throws when another metric has its name. The hub hands it a
   * `PromCollector`; the parameter is `never` so that prom-client's own `Registry`, whose
   * parameter is its `Metric` class union, fits this interface.
   */
  registerMetric (metric: never): void
  /** The metric registered under a name, if any. */
  getSingleMetric (name: string): unknown
  /** Removes the metric registered under a name. */
  removeSingleMetric (name: string): void
  /** Every metric of the registry in the text format. */
  metrics (): Promise<string>
  /** The content type of what `metrics()` returns. */
  readonly contentType: string
}

/** The part of the `prom-client` module the hub uses: its default registry. */
export interface PromClientModule {
  /** prom-client's default registry, which `register.metrics()` of the application renders. */
  readonly register: PromRegistry
}

function isPromClient (value: unknown): value is PromClientModule {
  const register = (value as { register?: Partial<PromRegistry> } | undefined)?.register
  return typeof register?.registerMetric === 'function' && typeof register.metrics === 'function' &&
    typeof register.getSingleMetric === 'function' && typeof register.removeSingleMetric === 'function'
}

/**
 * The application's prom-client, resolved from a directory (the application's: `process.cwd()`),
 * so that the hub registers into the very registry the application renders; undefined when it
 * has none. prom-client is no dependency of this package: an application without it gets the
 * hub's own text rendering.
 * @param from the directory to resolve `prom-client` from
 * @throws what loading an installed prom-client throws (a broken install is not hidden)
 */
export function loadPromClient (from: string): PromClientModule | undefined {
  let loaded: unknown
  try {
    loaded = createRequire(`${from.replace(/\/$/, '')}/`)('prom-client')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') return undefined
    throw error
  }
  return isPromClient(loaded) ? loaded : undefined
}

/** Checks that a value given as the `promClient` option has the registry the hub needs. */
export function isPromClientModule (value: unknown): value is PromClientModule {
  return isPromClient(value)
}

function asPromValues (family: MetricFamily): PromMetricValues {
  return {
    name: family.name,
    help: family.help,
    type: family.type,
    aggregator: 'sum',
    // Counters keep prom-client's own sample name, so that its OpenMetrics rendering names them right.
    values: family.samples.map(sample => sample.name === family.name
      ? { value: sample.value, labels: sample.labels ?? {} }
      : { value: sample.value, labels: sample.labels ?? {}, metricName: sample.name })
  }
}

/**
 * Registers the hub's metric families in a prom-client registry as collectors read at scrape
 * time, and removes them when the hub closes. A name some other metric holds (a second hub in the
 * same process) is left to it, with one warning: that hub's `hub.metrics()` still has it.
 */
export class PromClientBridge {
  readonly registry: PromRegistry
  readonly #source: MetricsSource
  readonly #prefix: string
  readonly #log: FastifyBaseLogger
  /** The collectors this hub registered, by the name they were registered under. */
  readonly #registered = new Map<string, PromCollector>()
  /** One reading of the hub for every collector of a scrape: the registry calls their `get()` in one go. */
  #snapshot: Map<string, MetricFamily> | undefined

  constructor (registry: PromRegistry, source: MetricsSource, prefix: string, log: FastifyBaseLogger) {
    this.registry = registry
    this.#source = source
    this.#prefix = prefix
    this.#log = log
  }

  /** The family's samples now; none for a family gone since registration (an adapter stat no longer reported). */
  #family (registered: MetricFamily): MetricFamily {
    if (this.#snapshot === undefined) {
      this.#snapshot = new Map(collectFamilies(this.#source, this.#prefix).map(family => [family.name, family]))
      queueMicrotask(() => { this.#snapshot = undefined })
    }
    return this.#snapshot.get(registered.name) ?? { ...registered, samples: [] }
  }

  /** Registers a collector for each family the hub has now (the adapter's stats included: call it once the adapter started). */
  register (): void {
    const taken: string[] = []
    for (const family of collectFamilies(this.#source, this.#prefix)) {
      if (this.registry.getSingleMetric(family.name) !== undefined) {
        taken.push(family.name)
        continue
      }
      const collector: PromCollector = {
        name: family.name,
        help: family.help,
        type: family.type,
        aggregator: 'sum',
        get: async () => ({ ...asPromValues(this.#family(family)), name: collector.name }),
        reset () {}
      }
      this.registry.registerMetric(collector as never)
      this.#registered.set(family.name, collector)
    }
    if (taken.length > 0) {
      this.#log.warn({ metrics: taken }, 'fastify-ws-hub: prom-client already has metrics of these names (another hub in this process?); ' +
        'they are left to it, and hub.metrics() still renders this hub\'s')
    }
  }

  /** Removes the collectors this hub registered. */
  unregister (): void {
    for (const [name, collector] of this.#registered) {
      if (this.registry.getSingleMetric(name) === collector) this.registry.removeSingleMetric(name)
    }
    this.#registered.clear()
  }
}
