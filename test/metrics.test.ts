import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Type } from '../dist/index.js'
import { connect, createApp, listen, stopReading, waitFor } from './helpers.js'
import { RawClient } from './raw-client.js'
import { histogram, parseMetrics, sampleValue } from './metrics-env.js'
import { sessions, startRecoveryHub, tickClient, ticksOf } from './recovery-env.js'

const P = 'fastify_ws_hub_'

test('hub.metrics() is Prometheus text whose gauges and counters move as clients open, talk and close with their codes', async (t) => {
  const app = await createApp(t, { handshakeMessage: false, metrics: { promClient: false } })
  app.hub.route({
    url: '/ws',
    onMessage (client, data) { client.send(`echo ${String(data)}`) }
  })
  const url = await listen(app)
  const before = parseMetrics(await app.hub.metrics())
  assert.equal(sampleValue(before, `${P}connections`, 'GAUGE'), 0)
  assert.equal(sampleValue(before, `${P}connections_opened_total`, 'COUNTER'), 0)
  assert.equal(histogram(before, `${P}broadcast_fanout_seconds`)?.count, 0)

  const first = await connect(`${url}/ws`)
  const second = await connect(`${url}/ws`)
  await waitFor(() => app.hub.onlineCount() === 2)
  first.socket.send('hello')
  await first.received(1)
  app.hub.broadcast('news')
  await Promise.all([first.received(2), second.received(1)])
  const openText = await app.hub.metrics()
  const open = parseMetrics(openText)
  assert.equal(sampleValue(open, `${P}connections`, 'GAUGE'), 2)
  assert.equal(sampleValue(open, `${P}connections_opened_total`, 'COUNTER'), 2)
  assert.equal(sampleValue(open, `${P}messages_received_total`, 'COUNTER'), 1)
  assert.equal(sampleValue(open, `${P}received_bytes_total`, 'COUNTER'), 5)
  // The echo to the first, the broadcast to both.
  assert.equal(sampleValue(open, `${P}messages_sent_total`, 'COUNTER'), 3)
  assert.equal(sampleValue(open, `${P}sent_bytes_total`, 'COUNTER'), 'echo hello'.length + 2 * 'news'.length)
  assert.equal(histogram(open, `${P}broadcast_fanout_seconds`)?.count, 1)
  const handler = histogram(open, `${P}handler_duration_seconds`, { type: 'onMessage' }, openText)
  assert.equal(handler?.count, 1)
  assert.ok((handler?.sum ?? -1) >= 0)

  first.socket.close(4001, 'bye')
  second.socket.close(1000)
  await Promise.all([first.closed, second.closed])
  await waitFor(() => app.hub.onlineCount() === 0)
  const closed = parseMetrics(await app.hub.metrics())
  assert.equal(sampleValue(closed, `${P}connections`, 'GAUGE'), 0)
  assert.equal(sampleValue(closed, `${P}connections_closed_total`, 'COUNTER', { code: '4xxx' }), 1)
  assert.equal(sampleValue(closed, `${P}connections_closed_total`, 'COUNTER', { code: '1000' }), 1)
  assert.equal(sampleValue(closed, `${P}connections_closed_total`, 'COUNTER', { code: '4001' }), undefined)
})

test('a typed route times each handler under its message type, and counts handler errors and invalid messages', async (t) => {
  const app = await createApp(t, { handshakeMessage: false, metrics: { promClient: false } })
  app.hub.route({
    url: '/typed',
    messages: { say: Type.Object({ text: Type.String() }), boom: Type.Object({}) },
    handlers: {
      async say () { await new Promise(resolve => setTimeout(resolve, 5)) },
      boom () { throw new Error('boom') }
    }
  })
  const url = await listen(app)
  const client = await connect(`${url}/typed`)
  client.socket.send(JSON.stringify({ type: 'say', data: { text: 'hi' }, id: 1 }))
  client.socket.send(JSON.stringify({ type: 'boom', data: {}, id: 2 }))
  client.socket.send(JSON.stringify({ type: 'nope', data: {} }))
  await client.received(3)
  const text = await app.hub.metrics()
  const families = parseMetrics(text)
  const say = histogram(families, `${P}handler_duration_seconds`, { type: 'say' }, text)
  assert.equal(say?.count, 1)
  // An async handler is timed until it settles: its 5 ms wait is in the sum.
  assert.ok((say?.sum ?? 0) >= 0.004, `say took ${say?.sum} s`)
  assert.equal(histogram(families, `${P}handler_duration_seconds`, { type: 'boom' }, text)?.count, 1)
  assert.equal(histogram(families, `${P}handler_duration_seconds`, { type: 'nope' }, text), undefined)
  assert.equal(sampleValue(families, `${P}handler_errors_total`, 'COUNTER'), 1)
  assert.equal(sampleValue(families, `${P}invalid_messages_total`, 'COUNTER'), 1)
})

test('an untyped handler that throws is counted, and its client\'s 1011 close too', async (t) => {
  const app = await createApp(t, { handshakeMessage: false, metrics: { promClient: false } })
  app.hub.route({ url: '/ws', onMessage () { throw new Error('broken') } })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  client.socket.send('x')
  assert.equal((await client.closed).code, 1011)
  await waitFor(() => app.hub.onlineCount() === 0)
  const text = await app.hub.metrics()
  const families = parseMetrics(text)
  assert.equal(sampleValue(families, `${P}handler_errors_total`, 'COUNTER'), 1)
  assert.equal(sampleValue(families, `${P}connections_closed_total`, 'COUNTER', { code: '1011' }), 1)
  assert.equal(histogram(families, `${P}handler_duration_seconds`, { type: 'onMessage' }, text)?.count, 1)
})

test('a client terminated for unanswered pings counts as a heartbeat termination and a 1006 close', async (t) => {
  const app = await createApp(t, { heartbeat: { interval: 50, maxFailures: 2 }, handshakeMessage: false, metrics: { promClient: false } })
  app.hub.route({ url: '/ws' })
  const { port } = new URL(await listen(app))
  const dead = await RawClient.upgrade(Number(port), '/ws')
  t.after(() => dead.destroy())
  await dead.closed
  await waitFor(() => app.hub.onlineCount() === 0)
  const families = parseMetrics(await app.hub.metrics())
  assert.equal(sampleValue(families, `${P}heartbeat_terminations_total`, 'COUNTER'), 1)
  assert.equal(sampleValue(families, `${P}connections_closed_total`, 'COUNTER', { code: '1006' }), 1)
})

test('messages skipped for a slow consumer are counted as dropped', async (t) => {
  const app = await createApp(t, { handshakeMessage: false, maxBufferedBytes: 64 * 1024, metrics: { promClient: false } })
  app.hub.route({ url: '/ws' })
  const url = await listen(app)
  const slow = await connect(`${url}/ws`)
  stopReading(slow)
  await waitFor(() => app.hub.onlineCount() === 1)
  const chunk = 'x'.repeat(64 * 1024)
  // Broadcast on later turns until the socket's unsent bytes pass the mark and one is skipped.
  await waitFor(() => {
    app.hub.broadcast(chunk)
    return app.hub.stats().dropped > 0
  }, 10_000, 'a dropped message')
  const families = parseMetrics(await app.hub.metrics())
  assert.equal(sampleValue(families, `${P}messages_dropped_total`, 'COUNTER'), app.hub.stats().dropped)
})

test('GET on the metrics route serves the text format with its content type', async (t) => {
  const app = await createApp(t, { metrics: { route: '/metrics', promClient: false, prefix: 'chat_' } })
  app.hub.route({ url: '/ws' })
  await app.ready()
  const response = await app.inject('/metrics')
  assert.equal(response.statusCode, 200)
  assert.equal(response.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  const families = parseMetrics(response.body)
  assert.equal(sampleValue(families, 'chat_connections', 'GAUGE'), 0)
  assert.ok(families.every(family => family.name.startsWith('chat_')))
  assert.equal(histogram(families, 'chat_broadcast_fanout_seconds')?.count, 0)
})

test('without the metrics option, hub.metrics() has the gauges and counters and no histograms, and no route is added', async (t) => {
  const app = await createApp(t)
  await app.ready()
  const families = parseMetrics(await app.hub.metrics())
  assert.equal(sampleValue(families, `${P}connections`, 'GAUGE'), 0)
  assert.equal(sampleValue(families, `${P}adapter_published_total`, 'COUNTER'), 0)
  assert.ok(!families.some(family => family.type === 'HISTOGRAM'))
  assert.equal((await app.inject('/metrics')).statusCode, 404)
})

test('with recovery, recorded broadcasts are timed as fan-outs and the sessions are counted', async (t) => {
  const { app, url } = await startRecoveryHub(t, { metrics: { promClient: false } })
  const { log } = tickClient(t, url)
  await sessions(log, 1)
  ticksOf(app).broadcastEvent('tick', { n: 1, from: 'a', to: 'all' })
  await waitFor(() => log.ticks.length === 1)
  const families = parseMetrics(await app.hub.metrics())
  assert.equal(histogram(families, `${P}broadcast_fanout_seconds`)?.count, 1)
  assert.equal(sampleValue(families, `${P}sessions_new_total`, 'COUNTER'), 1)
  assert.equal(sampleValue(families, `${P}sessions_resumed_total`, 'COUNTER'), 0)
})
