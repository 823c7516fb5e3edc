// Session recovery on one process (the memory adapter's history): a client that loses its link
// resumes with its id, rooms and every event sent meanwhile, exactly once and in order.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { sleep, waitFor } from './helpers.js'
import { checkTicks, sessions, startRecoveryHub, tickClient } from './recovery-env.js'
import { startProxy as startLinkProxy } from './client-env.js'

test('a client cut off resumes with its id, its rooms, and every event sent meanwhile, once each, in order', async (t) => {
  const { app, port, opens } = await startRecoveryHub(t)
  const proxy = await startLinkProxy(t, port)
  const { client, log } = tickClient(t, `ws://127.0.0.1:${proxy.port}/ticks`)
  await sessions(log, 1)
  const first = log.sessions[0]
  assert.equal(first?.recovered, false)
  await client.request('join', { room: 'lobby' })
  const id = first.id
  let n = 0
  const send = (): void => {
    n++
    // The three audiences in turn: everyone, the room, the client alone.
    if (n % 3 === 0) app.hub.broadcastEvent('tick', { n, from: 'hub', to: '*' })
    else if (n % 3 === 1) app.hub.broadcastEvent('tick', { n, from: 'hub', to: 'lobby' }, { room: 'lobby' })
    else app.hub.sendEventTo(id, 'tick', { n, from: 'hub', to: id })
  }
  for (let i = 0; i < 30; i++) send()
  await waitFor(() => log.ticks.length === 30, 3000, '30 live ticks')
  // The link dies (resets), and the hub goes on publishing into the dying socket and after it.
  proxy.cut()
  for (let i = 0; i < 600; i++) send()
  await sessions(log, 2)
  assert.deepEqual(log.sessions[1], { id, recovered: true })
  await waitFor(() => log.ticks.length >= 630, 5000, `630 ticks (got ${log.ticks.length})`)
  for (let i = 0; i < 30; i++) send()
  await waitFor(() => log.ticks.length >= 660, 3000, '660 ticks')
  await sleep(50)
  assert.equal(checkTicks(log, { hub: 660 }), '')
  assert.deepEqual(opens.seen.map(open => open.recovered), [false, true])
  assert.deepEqual(opens.seen[1], { id, recovered: true, rooms: ['lobby'] })
  assert.equal(app.hub.clients.get(id)?.rooms.has('lobby'), true)
})
