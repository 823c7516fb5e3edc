import type { FastifyBaseLogger } from 'fastify'
import { collectFamilies, type MetricsSource } from './families.ts'
import type { ResolvedMetricsOptions } from './options.ts'
import { loadPromClient, PromClientBridge } from './prom-client.ts'
import { PROMETHEUS_CONTENT_TYPE, renderText } from './text.ts'

const DEFAULT_PREFIX = 'fastify_ws_hub_'

/** A scrape's answer: its content type and body. */
export interface Scrape {
  readonly contentType: string
  readonly body: string
}

/**
 * What `hub.metrics()` and the metrics route answer: the hub's metrics in the text format, and,
 * with prom-client, the registration of the same metrics in the application's default registry.
 */
export class MetricsExporter {
  readonly #source: MetricsSource
  readonly #prefix: string
  readonly #bridge: PromClientBridge | undefined

  /**
   * Loads the application's prom-client (only when metrics are on and `promClient` is `'auto'`).
   * @param appDirectory where the application's prom-client is resolved from
   */
  constructor (source: MetricsSource, options: ResolvedMetricsOptions | false, log: FastifyBaseLogger, appDirectory = process.cwd()) {
    this.#source = source
    this.#prefix = options === false ? DEFAULT_PREFIX : options.prefix
    if (options === false || options.promClient === false) return
    const client = options.promClient === 'auto' ? loadPromClient(appDirectory) : options.promClient
    if (client !== undefined) this.#bridge = new PromClientBridge(client.register, source, this.#prefix, log)
  }

  /** Registers the hub's metrics in prom-client's registry (once the adapter has started: its stats are known then). */
  start (): void {
    this.#bridge?.register()
  }

  /** Takes them out of it again, when the hub closes. */
  stop (): void {
    this.#bridge?.unregister()
  }

  /** The hub's metrics in the Prometheus text exposition format 0.0.4. */
  async render (): Promise<string> {
    return renderText(collectFamilies(this.#source, this.#prefix))
  }

  /** What the metrics route serves: the whole prom-client registry when there is one (the application's metrics too), else `render()`. */
  async scrape (): Promise<Scrape> {
    const registry = this.#bridge?.registry
    if (registry === undefined) return { contentType: PROMETHEUS_CONTENT_TYPE, body: await this.render() }
    return { contentType: registry.contentType, body: await registry.metrics() }
  }
}
