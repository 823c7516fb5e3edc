import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { createApp, waitFor } from './helpers.js'
import { mib, RawClient } from './raw-client.js'
import { activeResources, heapAfterGc, since, trackTimers } from './probes.js'

const ROUNDS = 20
const PER_ROUND = 50

test('1000 clients that disconnect while an async onUpgrade is pending: none is registered, nothing leaks', async (t) => {
  const timers = trackTimers()
  t.after(() => timers.stop())
  // Each pending upgrade holds one of the address's slots: a leaked reservation would lock real clients out.
  const app = await createApp(t, { maxConnectionsPerIp: PER_ROUND, heartbeat: { interval: 60_000 } })
  const pending: Array<() => void> = []
  let upgradesStarted = 0
  let hold = true
  let opened = 0
  let closedHooks = 0
  app.hub.route({
    url: '/ws',
    async onUpgrade () {
      upgradesStarted++
      if (hold) await new Promise<void>(resolve => pending.push(resolve))
      return { user: 'late' }
    },
    onOpen (client) {
      opened++
      client.join('lobby')
    },
    onClose () { closedHooks++ }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const server = app.server
  const listenersOf = (): Record<string, number> => Object.fromEntries(server.eventNames().map(name => [String(name), server.listenerCount(name)]))
  const baseline = {
    listeners: listenersOf(),
    timeouts: activeResources('Timeout'),
    sockets: activeResources('TCPSocketWrap'),
    liveTimers: await timers.live(),
    heap: await heapAfterGc()
  }

  const start = performance.now()
  for (let round = 0; round < ROUNDS; round++) {
    const clients = await Promise.all(Array.from({ length: PER_ROUND }, () => RawClient.open(port)))
    await waitFor(() => pending.length === PER_ROUND, 5000, 'every onUpgrade to be pending')
    // Half of them close politely (FIN), half reset the connection (RST).
    clients.forEach((client, i) => i % 2 === 0 ? client.destroy() : client.socket.resetAndDestroy())
    await Promise.all(clients.map(client => client.closed))
    for (const resolve of pending.splice(0)) resolve()
  }
  await waitFor(() => activeResources('TCPSocketWrap') <= baseline.sockets, 5000, 'the server to drop the sockets')
  const elapsed = since(start)

  assert.equal(upgradesStarted, ROUNDS * PER_ROUND)
  assert.equal(opened, 0, 'onOpen never ran')
  assert.equal(closedHooks, 0)
  assert.equal(app.hub.onlineCount(), 0)
  assert.equal(app.hub.roomSize('lobby'), 0)
  assert.equal(app.hub.stats().rooms, 0)
  assert.equal(app.websocketServer.clients.size, 0, 'ws tracks no socket')
  await waitFor(() => activeResources('Timeout') <= baseline.timeouts, 2000, 'timers back to baseline')
  assert.deepEqual(listenersOf(), baseline.listeners, 'listeners on fastify.server')
  assert.equal(activeResources('TCPSocketWrap'), baseline.sockets)
  const liveAfter = await timers.live()
  assert.equal(liveAfter, baseline.liveTimers, 'no timer left behind, unref\'d ones included')
  const heapGrowth = await heapAfterGc() - baseline.heap

  // Every reservation was released: the address's whole quota is free for real clients again.
  hold = false
  const real = await Promise.all(Array.from({ length: PER_ROUND }, () => RawClient.upgrade(port)))
  await waitFor(() => app.hub.onlineCount() === PER_ROUND, 5000, 'the real clients to open')
  assert.equal(opened, PER_ROUND)
  for (const client of real) client.destroy()
  t.diagnostic(`${ROUNDS * PER_ROUND} aborted upgrades in ${elapsed} ms: 0 opened, heap after GC ${heapGrowth >= 0 ? '+' : ''}${mib(heapGrowth)} MiB, listeners ${JSON.stringify(baseline.listeners)}`)
})
