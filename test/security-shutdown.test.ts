import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import Fastify from 'fastify'
import fastifyWsHub from '../dist/index.js'
import { waitFor } from './helpers.js'
import { closed, openClient } from './churn.js'
import { RawClient, upgradeRequest } from './raw-client.js'
import { since, trackTimers } from './probes.js'

const CLIENTS = 1000

/**
 * The handles an app of this package can leave behind: sockets, servers, timers. Node's own
 * bookkeeping (`ConnectWrap`, `FSReqPromise`...) differs between Node versions and is not counted.
 */
const OWN_RESOURCES = ['TCPSocketWrap', 'TCPServerWrap', 'Timeout']

function resourceCounts (): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const resource of process.getActiveResourcesInfo()) {
    if (OWN_RESOURCES.includes(resource)) counts[resource] = (counts[resource] ?? 0) + 1
  }
  return counts
}

test(`${CLIENTS} clients and app.close(): every one sees 1001, close resolves in < 5 s, an upgrade sent meanwhile gets 503, nothing stays open`, async (t) => {
  const timers = trackTimers()
  const baseline = { resources: resourceCounts(), liveTimers: await timers.live() }
  const app = Fastify()
  await app.register(fastifyWsHub, { heartbeat: { interval: 1000 }, shutdownTimeout: 3000 })
  const pending: { late?: RawClient } = {}
  let onCloses = 0
  app.hub.route({
    url: '/ws',
    onClose () {
      // The first onClose means the shutdown is under way: send an upgrade on a connection opened before.
      if (onCloses++ === 0) pending.late?.write(upgradeRequest('/ws', 'localhost'))
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const url = `ws://127.0.0.1:${port}/ws`
  const clients = []
  for (let batch = 0; batch < CLIENTS / 100; batch++) {
    clients.push(...await Promise.all(Array.from({ length: 100 }, () => openClient(url))))
  }
  await waitFor(() => app.hub.onlineCount() === CLIENTS, 5000, 'every client to open')
  const codes = clients.map(client => new Promise<number>(resolve => client.once('close', code => resolve(code))))
  const late = await RawClient.open(port, '/ws', {}, '')
  pending.late = late

  const start = performance.now()
  await app.close()
  const elapsed = since(start)
  const seen = await Promise.all(codes)
  assert.ok(elapsed < 5000, `close took ${elapsed} ms`)
  assert.equal(seen.filter(code => code === 1001).length, CLIENTS, 'every client saw 1001')
  assert.equal(onCloses, CLIENTS)
  assert.equal(await late.response, 503)
  assert.equal(app.hub.onlineCount(), 0)

  // Neither @fastify/websocket's listener nor the hub's late-upgrade refuser stays on the closed server.
  const upgradeListeners = app.server.listeners('upgrade').map(listener => listener.name)
  assert.deepEqual(upgradeListeners, [])
  await Promise.all(clients.map(closed))
  late.destroy()
  await waitFor(() => JSON.stringify(resourceCounts()) === JSON.stringify(baseline.resources), 5000, 'handles back to baseline')
  assert.deepEqual(resourceCounts(), baseline.resources)
  assert.equal(await timers.live(), baseline.liveTimers, 'no timer left, unref\'d ones included')
  timers.stop()
  t.diagnostic(`${CLIENTS} clients: app.close() in ${elapsed} ms, ${seen.length} saw 1001, late upgrade ${late.status}, upgrade listeners left: [${upgradeListeners.join(', ')}]`)
})

test('an upgrade whose onUpgrade is still running when shutdown starts gets 503 and does not hold app.close()', async (t) => {
  const app = Fastify()
  await app.register(fastifyWsHub, { heartbeat: false, shutdownTimeout: 300 })
  let entered: () => void = () => {}
  const inUpgrade = new Promise<void>(resolve => { entered = resolve })
  app.hub.route({ url: '/ws', async onUpgrade () { entered(); await new Promise(resolve => setTimeout(resolve, 100)); return {} } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const client = await RawClient.open(port)
  client.answerClose = false
  await inUpgrade
  // Shutdown starts while onUpgrade runs: the websocket server is closed by then, so ws refuses the upgrade.
  const start = performance.now()
  await app.close()
  const elapsed = since(start)
  assert.equal(await client.response, 503)
  assert.equal(app.hub.onlineCount(), 0)
  client.destroy()
  assert.ok(elapsed < 2000, `close took ${elapsed} ms`)
  t.diagnostic(`close with an upgrade pending in onUpgrade: ${elapsed} ms, the upgrade answered ${client.status}`)
})

for (const upgradeTakes of [4000, Number.POSITIVE_INFINITY]) {
  const what = Number.isFinite(upgradeTakes) ? `${upgradeTakes / 1000} s` : 'forever'
  test(`app.close() ends within shutdownTimeout while an onUpgrade takes ${what}; the upgrade gets 503 and is never opened`, async (t) => {
    const shutdownTimeout = 500
    const app = Fastify()
    await app.register(fastifyWsHub, { heartbeat: false, shutdownTimeout })
    let entered: () => void = () => {}
    const inUpgrade = new Promise<void>(resolve => { entered = resolve })
    let settle: (() => void) | undefined
    let opened = 0
    app.hub.route({
      url: '/ws',
      async onUpgrade () {
        entered()
        await new Promise<void>(resolve => {
          settle = resolve
          if (Number.isFinite(upgradeTakes)) setTimeout(resolve, upgradeTakes).unref()
        })
        return {}
      },
      onOpen () { opened++ }
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as AddressInfo
    const client = await RawClient.open(port)
    t.after(() => client.destroy())
    await inUpgrade
    const start = performance.now()
    await app.close()
    const elapsed = since(start)
    assert.equal(await client.response, 503)
    await client.closed
    // Let the upgrade's hook finish after the shutdown: nothing is opened, nothing throws.
    settle?.()
    await new Promise(resolve => setTimeout(resolve, 50))
    assert.equal(opened, 0)
    assert.equal(app.hub.onlineCount(), 0)
    // shutdownTimeout for the upgrades, plus slack for a loaded machine; far below the 4 s hook.
    assert.ok(elapsed < shutdownTimeout + 1500, `close took ${elapsed} ms`)
    assert.ok(elapsed >= shutdownTimeout - 1, `close took ${elapsed} ms: it gave the upgrade its shutdownTimeout`)
    t.diagnostic(`onUpgrade taking ${what}: app.close() in ${elapsed} ms (shutdownTimeout ${shutdownTimeout} ms), the upgrade answered ${client.status}`)
  })
}
