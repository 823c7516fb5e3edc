import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import Fastify from 'fastify'
import promClient from 'prom-client'
import fastifyWsHub, { memoryAdapter } from '../dist/index.js'
import { loadPromClient } from '../dist/metrics/prom-client.js'
import { connect, createApp, listen, waitFor } from './helpers.js'
import { histogram, parseMetrics, sampleValue } from './metrics-env.js'

const P = 'fastify_ws_hub_'

test('the application\'s prom-client is found from its directory; none, or a module without a registry, is none; a broken one throws', async (t) => {
  assert.equal(loadPromClient(process.cwd()), promClient)
  const empty = await mkdtemp(join(tmpdir(), 'fwh-no-prom-'))
  t.after(() => rm(empty, { recursive: true, force: true }))
  assert.equal(loadPromClient(empty), undefined)
  await mkdir(join(empty, 'node_modules', 'prom-client'), { recursive: true })
  await writeFile(join(empty, 'node_modules', 'prom-client', 'index.js'), 'module.exports = { register: {} }')
  assert.equal(loadPromClient(empty), undefined)
  // Another directory: require caches the module above by its path.
  const broken = await mkdtemp(join(tmpdir(), 'fwh-broken-prom-'))
  t.after(() => rm(broken, { recursive: true, force: true }))
  await mkdir(join(broken, 'node_modules', 'prom-client'), { recursive: true })
  await writeFile(join(broken, 'node_modules', 'prom-client', 'index.js'), 'throw new Error("half installed")')
  assert.throws(() => loadPromClient(broken), /half installed/)
})

test('with prom-client, the hub\'s metrics are in its default registry, the route serves the whole registry, and they leave it when the app closes', async (t) => {
  const own = new promClient.Counter({ name: 'app_orders_total', help: 'The application\'s own counter.' })
  t.after(() => promClient.register.removeSingleMetric('app_orders_total'))
  own.inc(3)
  const app = Fastify()
  t.after(() => app.close())
  await app.register(fastifyWsHub, { heartbeat: false, handshakeMessage: false, metrics: { route: '/metrics' } })
  app.hub.route({ url: '/ws', onMessage (client, data) { client.send(data) } })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  client.socket.send('ping')
  await client.received(1)
  app.hub.broadcast('all')
  await client.received(2)

  const text = await promClient.register.metrics()
  const families = parseMetrics(text)
  assert.equal(sampleValue(families, 'app_orders_total', 'COUNTER'), 3)
  assert.equal(sampleValue(families, `${P}connections`, 'GAUGE'), 1)
  assert.equal(sampleValue(families, `${P}messages_received_total`, 'COUNTER'), 1)
  assert.equal(sampleValue(families, `${P}upgrades_rejected_total`, 'COUNTER', { reason: 'origin' }), 0)
  assert.equal(histogram(families, `${P}broadcast_fanout_seconds`)?.count, 1)
  assert.equal(histogram(families, `${P}handler_duration_seconds`, { type: 'onMessage' }, text)?.count, 1)
  // hub.metrics() has the same numbers, rendered by the hub.
  const own2 = parseMetrics(await app.hub.metrics())
  assert.equal(sampleValue(own2, `${P}messages_received_total`, 'COUNTER'), 1)
  assert.ok(!own2.some(family => family.name === 'app_orders_total'), 'hub.metrics() has the hub\'s metrics only')

  const response = await app.inject('/metrics')
  assert.equal(response.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  const served = parseMetrics(response.body)
  assert.equal(sampleValue(served, 'app_orders_total', 'COUNTER'), 3)
  assert.equal(sampleValue(served, `${P}connections_opened_total`, 'COUNTER'), 1)

  client.socket.close()
  await waitFor(() => app.hub.onlineCount() === 0)
  await app.close()
  assert.equal(promClient.register.getSingleMetric(`${P}connections`), undefined)
  assert.ok(promClient.register.getSingleMetric('app_orders_total') !== undefined)
})

test('prom-client\'s OpenMetrics rendering names the hub\'s counters right', async (t) => {
  const registry = new promClient.Registry<typeof promClient.openMetricsContentType>()
  registry.setContentType(promClient.openMetricsContentType)
  const app = await createApp(t, { metrics: { promClient: { register: registry } } })
  await app.ready()
  const text = await registry.metrics()
  assert.match(text, /^fastify_ws_hub_connections_opened_total 0$/m)
  assert.doesNotMatch(text, /_total_total/)
  assert.match(text, /^# TYPE fastify_ws_hub_connections_opened counter$/m)
  assert.match(text, /^fastify_ws_hub_broadcast_fanout_seconds_bucket\{le="\+Inf"\} 0$/m)
  assert.match(text, /# EOF\n$/)
  // prom-client's resetMetrics() leaves the hub's counters as they are: they belong to the hub.
  registry.resetMetrics()
  assert.match(await registry.metrics(), /^fastify_ws_hub_connections_opened_total 0$/m)
  await app.close()
  assert.equal(registry.getSingleMetric('fastify_ws_hub_connections_opened_total'), undefined)
})

test('a second hub in the process leaves prom-client\'s names to the first, with a warning, and keeps its own hub.metrics()', async (t) => {
  const registry = new promClient.Registry()
  const first = await createApp(t, { metrics: { promClient: { register: registry } } })
  await first.ready()
  const warnings: unknown[] = []
  const second = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(JSON.parse(line)) } } } })
  t.after(() => second.close())
  await second.register(fastifyWsHub, { heartbeat: false, metrics: { promClient: { register: registry } } })
  second.hub.route({ url: '/ws' })
  const url = await listen(second)
  await connect(`${url}/ws`)
  await waitFor(() => second.hub.onlineCount() === 1)
  assert.ok(warnings.some(entry => /already has metrics/.test(String((entry as { msg?: string }).msg))))
  // The registry reads the first hub, which has no clients; the second's own text has its client.
  assert.equal(sampleValue(parseMetrics(await registry.metrics()), `${P}connections`, 'GAUGE'), 0)
  assert.equal(sampleValue(parseMetrics(await second.hub.metrics()), `${P}connections`, 'GAUGE'), 1)
  // Closing the second does not take the first's metrics out of the registry.
  await second.close()
  assert.ok(registry.getSingleMetric(`${P}connections`) !== undefined)
})

test('with promClient false, prom-client\'s registry is left alone', async (t) => {
  const app = await createApp(t, { metrics: { promClient: false, route: '/metrics' } })
  await app.ready()
  assert.equal(promClient.register.getSingleMetric(`${P}connections`), undefined)
  const response = await app.inject('/metrics')
  assert.equal(sampleValue(parseMetrics(response.body), `${P}connections`, 'GAUGE'), 0)
})

test('an adapter stat that is gone at scrape time is rendered as a family without samples', async (t) => {
  const registry = new promClient.Registry()
  let reads = 0
  const adapter = memoryAdapter()
  // Its stats have "warmup" at registration only.
  adapter.stats = (): Record<string, number> => (reads++ === 0 ? { warmup: 1 } : {})
  const app = await createApp(t, { adapter, metrics: { promClient: { register: registry } } })
  await app.ready()
  const text = await registry.metrics()
  assert.match(text, /^# TYPE fastify_ws_hub_adapter_warmup_total counter$/m)
  assert.doesNotMatch(text, /^fastify_ws_hub_adapter_warmup_total /m)
  parseMetrics(text)
})
