import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import { connect, createApp, listen, waitFor } from './helpers.js'
import { histogram, parseMetrics, sampleValue } from './metrics-env.js'
import { uniquePrefix, useRedis } from './redis-env.js'

const P = 'fastify_ws_hub_'

async function node (t: TestContext, url: string, prefix: string): Promise<{ app: FastifyInstance, url: string }> {
  const app = await createApp(t, { handshakeMessage: false, adapter: redisAdapter({ url, prefix }), metrics: { promClient: false } })
  app.hub.route({ url: '/ws' })
  return { app, url: await listen(app) }
}

test('on two nodes over Redis, the adapter\'s counters and the delivery delay of the other node\'s broadcasts are in the metrics', async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const prefix = uniquePrefix()
  const a = await node(t, redis, prefix)
  const b = await node(t, redis, prefix)
  const onB = await connect(`${b.url}/ws`)
  await waitFor(() => b.app.hub.onlineCount() === 1)
  // Each broadcast is one publish from a; b gets those published after it subscribed.
  await waitFor(() => {
    a.app.hub.broadcast('from a')
    return onB.messages.length > 0
  }, 5000, 'a broadcast from a to reach b')

  const fromA = parseMetrics(await a.app.hub.metrics())
  assert.ok((sampleValue(fromA, `${P}adapter_published_total`, 'COUNTER') ?? 0) >= 1)
  assert.equal(sampleValue(fromA, `${P}adapter_dropped_total`, 'COUNTER'), 0)
  assert.equal(sampleValue(fromA, `${P}adapter_gaps_total`, 'COUNTER'), 0)
  assert.equal(sampleValue(fromA, `${P}adapter_pending_bytes`, 'GAUGE') !== undefined, true)
  assert.equal(histogram(fromA, `${P}broadcast_delivery_delay_seconds`)?.count, 0)

  const onBMetrics = parseMetrics(await b.app.hub.metrics())
  const received = sampleValue(onBMetrics, `${P}adapter_received_total`, 'COUNTER') ?? 0
  assert.ok(received >= 1, `b received ${received}`)
  assert.ok((sampleValue(onBMetrics, `${P}adapter_received_bytes_total`, 'COUNTER') ?? 0) > 0)
  assert.ok((sampleValue(onBMetrics, `${P}adapter_subscriptions`, 'GAUGE') ?? -1) >= 0)
  // Every envelope b got from a was a broadcast it wrote to its client: timed and delayed.
  assert.equal(histogram(onBMetrics, `${P}broadcast_delivery_delay_seconds`)?.count, received)
  assert.equal(histogram(onBMetrics, `${P}broadcast_fanout_seconds`)?.count, received)
  // A broadcast of the last round may still be on its way to the client.
  assert.ok((sampleValue(onBMetrics, `${P}messages_sent_total`, 'COUNTER') ?? 0) >= onB.messages.length)
})

test('over Redis, a broadcast to several rooms arrives as one copy per room and each copy is timed as a fan-out', async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const prefix = uniquePrefix()
  const a = await node(t, redis, prefix)
  const b = await createApp(t, { handshakeMessage: false, adapter: redisAdapter({ url: redis, prefix }), metrics: { promClient: false } })
  b.hub.route({ url: '/ws', async onOpen (client) { await Promise.all([client.join('x'), client.join('y')]) } })
  const onB = await connect(`${await listen(b)}/ws`)
  await waitFor(() => b.hub.roomSize('y') === 1)
  await waitFor(() => {
    a.app.hub.broadcast('to x and y', { room: ['x', 'y'] })
    return onB.messages.length > 0
  }, 5000, 'a room broadcast from a to reach b')
  const families = parseMetrics(await b.hub.metrics())
  const received = sampleValue(families, `${P}adapter_received_total`, 'COUNTER') ?? 0
  assert.ok(received >= 2, `b received ${received} copies`)
  assert.equal(histogram(families, `${P}broadcast_fanout_seconds`)?.count, received)
  assert.equal(histogram(families, `${P}broadcast_delivery_delay_seconds`)?.count, received)
})
