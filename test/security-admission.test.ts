import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { test, type TestContext } from 'node:test'
import type { FastifyServerOptions } from 'fastify'
import type { FastifyWsHubOptions } from '../dist/index.js'
import { connect, createApp, listen, waitFor } from './helpers.js'
import { RawClient } from './raw-client.js'
import { since } from './probes.js'

async function admissionApp (t: TestContext, hubOptions: FastifyWsHubOptions, fastifyOptions: FastifyServerOptions = {}) {
  const app = await createApp(t, hubOptions, fastifyOptions)
  let upgrades = 0
  app.hub.route({ url: '/ws', onUpgrade () { upgrades++; return {} } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const open: RawClient[] = []
  t.after(() => { for (const client of open) client.destroy() })
  async function attempt (headers: Record<string, string> = {}): Promise<RawClient> {
    const client = await RawClient.open(port, '/ws', headers)
    await client.response
    open.push(client)
    return client
  }
  return { app, attempt, upgrades: () => upgrades }
}

test('maxConnections: one more upgrade gets 503 before the upgrade, counted in rejectedCapacity; a freed slot is reusable', async (t) => {
  const { app, attempt, upgrades } = await admissionApp(t, { maxConnections: 3 })
  const admitted = []
  for (let i = 0; i < 3; i++) admitted.push(await attempt())
  assert.deepEqual(admitted.map(c => c.status), [101, 101, 101])
  const refused = await attempt()
  assert.equal(refused.status, 503)
  assert.match(refused.head, /^HTTP\/1\.1 503/)
  assert.equal(upgrades(), 3, 'the refused request never reached onUpgrade')
  assert.equal(app.hub.onlineCount(), 3)
  assert.equal(app.hub.stats().rejectedCapacity, 1)

  admitted[0]?.destroy()
  await waitFor(() => app.hub.onlineCount() === 2, 2000, 'the slot to be freed')
  assert.equal((await attempt()).status, 101)
})

test('maxConnectionsPerIp: one more upgrade from the same address gets 429, counted in rejectedPerIp', async (t) => {
  const { app, attempt } = await admissionApp(t, { maxConnectionsPerIp: 2 })
  assert.equal((await attempt()).status, 101)
  const second = await attempt()
  assert.equal(second.status, 101)
  assert.equal((await attempt()).status, 429)
  assert.equal((await attempt({ 'X-Forwarded-For': '10.9.9.9' })).status, 429, 'X-Forwarded-For is ignored without trustProxy')
  assert.equal(app.hub.stats().rejectedPerIp, 2)
  second.destroy()
  await waitFor(() => app.hub.onlineCount() === 1, 2000, 'the slot to be freed')
  assert.equal((await attempt()).status, 101)
})

test('maxConnectionsPerIp honours trustProxy: each X-Forwarded-For client address has its own quota', async (t) => {
  const { app, attempt } = await admissionApp(t, { maxConnectionsPerIp: 1 }, { trustProxy: true })
  assert.equal((await attempt({ 'X-Forwarded-For': '10.0.0.1' })).status, 101)
  assert.equal((await attempt({ 'X-Forwarded-For': '10.0.0.1' })).status, 429)
  assert.equal((await attempt({ 'X-Forwarded-For': '10.0.0.2' })).status, 101)
  assert.equal((await attempt({ 'X-Forwarded-For': '10.0.0.2, 10.0.0.1' })).status, 429, 'the client address is the first hop')
  assert.equal(app.hub.onlineCount(), 2)
  assert.equal(app.hub.stats().rejectedPerIp, 2)
})

test('a burst of concurrent upgrades never opens more than maxConnections clients', async (t) => {
  const app = await createApp(t, { maxConnections: 5 })
  // An async onUpgrade lets the whole burst pass the admission hook before any client is open.
  app.hub.route({ url: '/ws', async onUpgrade () { await new Promise(resolve => setTimeout(resolve, 20)); return {} } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const clients = await Promise.all(Array.from({ length: 20 }, () => RawClient.open(port)))
  t.after(() => { for (const client of clients) client.destroy() })
  await Promise.all(clients.map(client => client.response))
  const upgraded = clients.filter(client => client.status === 101)
  const refused = clients.filter(client => client.status === 503)
  // Admission reserves a slot per upgrade, so the burst cannot race past the cap while onUpgrade runs.
  assert.equal(upgraded.length, 5, 'exactly maxConnections are upgraded')
  assert.equal(refused.length, 15, 'the rest get 503 before the upgrade')
  assert.equal(app.hub.onlineCount(), 5)
  assert.equal(app.hub.stats().rejectedCapacity, 15)
  t.diagnostic(`burst of 20 against maxConnections 5: ${upgraded.length} upgraded, ${refused.length} refused 503 before the upgrade`)
})

test('rateLimit: a client over max messages per window is closed with 1008 and counted; one at the limit is not', async (t) => {
  const app = await createApp(t, { rateLimit: { max: 5, windowMs: 10_000 } })
  let handled = 0
  app.hub.route({ url: '/ws', onMessage () { handled++ } })
  const url = await listen(app)
  const polite = await connect(`${url}/ws`)
  const flooder = await connect(`${url}/ws`)
  for (let i = 0; i < 5; i++) polite.socket.send(`ok ${i}`)
  const start = performance.now()
  for (let i = 0; i < 50; i++) flooder.socket.send(`flood ${i}`)
  const close = await flooder.closed
  const elapsed = since(start)
  assert.equal(close.code, 1008)
  assert.equal(close.reason, 'rate limit exceeded')
  await waitFor(() => handled === 10, 2000, 'the polite messages')
  assert.equal(handled, 10, 'five from each: nothing past the limit reached onMessage')
  assert.equal(polite.socket.readyState, polite.socket.OPEN)
  assert.equal(app.hub.stats().rateLimitCloses, 1)
  t.diagnostic(`flooder closed 1008 ${elapsed} ms after its first message`)
})
