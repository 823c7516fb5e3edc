// Session recovery on one process (the memory adapter's history): a client that loses its link
// resumes with its id, rooms and every event sent meanwhile, exactly once and in order.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import WebSocket from 'ws'
import { connect, sleep, waitFor } from './helpers.js'
import { checkTicks, rawSession, sessions, startRecoveryHub, tickClient, ticksOf } from './recovery-env.js'
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
    if (n % 3 === 0) ticksOf(app).broadcastEvent('tick', { n, from: 'hub', to: '*' })
    else if (n % 3 === 1) ticksOf(app).broadcastEvent('tick', { n, from: 'hub', to: 'lobby' }, { room: 'lobby' })
    else ticksOf(app).sendEventTo(id, 'tick', { n, from: 'hub', to: id })
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
  const stats = app.hub.stats()
  assert.deepEqual([stats.sessionsNew, stats.sessionsResumed, stats.resumesRefused], [1, 1, 0])
  assert.equal(app.hub.clients.get(id)?.rooms.has('lobby'), true)
})

test('a resume with a forged token, another client\'s id, or other params gets a fresh session', async (t) => {
  const { app, url } = await startRecoveryHub(t, {}, user => ({ user: user ?? 'anonymous' }))
  const owner = await rawSession(t, `${url}?user=ann`)
  const { id, token } = await owner.session()
  owner.socket.terminate()
  await waitFor(() => app.hub.clients.size === 0, 2000, 'the owner gone')

  const refusedBefore = app.hub.stats().resumesRefused
  const forged = await rawSession(t, `${url}?user=ann`, { id, token: 'not-the-token' })
  const forgedSession = await forged.session()
  assert.equal(forgedSession.recovered, false)
  assert.notEqual(forgedSession.id, id)

  // The right token under another user's params: onUpgrade ran again and gave other params.
  const stranger = await rawSession(t, `${url}?user=bob`, { id, token })
  assert.equal((await stranger.session()).recovered, false)
  assert.equal(app.hub.stats().resumesRefused, refusedBefore + 2)

  // Neither used the session up: its owner still resumes it.
  const back = await rawSession(t, `${url}?user=ann`, { id, token })
  const resumed = await back.session()
  assert.deepEqual([resumed.id, resumed.recovered], [id, true])
  assert.notEqual(resumed.token, token, 'the token is rotated at each resume')
})

test('a session resumes once: a second socket with the same token while the first is open gets a fresh one', async (t) => {
  const { app, url } = await startRecoveryHub(t)
  const first = await rawSession(t, url)
  const { id, token } = await first.session()
  // The first socket is open and answers pings (ws does): it keeps its session.
  const second = await rawSession(t, url, { id, token })
  const secondSession = await second.session()
  assert.equal(secondSession.recovered, false)
  assert.notEqual(secondSession.id, id)
  assert.equal(first.socket.readyState, WebSocket.OPEN)
  assert.equal(app.hub.clients.has(id), true)

  // Once the first is gone, its token resumes it; that token then is spent.
  first.socket.terminate()
  await waitFor(() => !app.hub.clients.has(id), 2000, 'the first socket gone')
  const third = await rawSession(t, url, { id, token })
  assert.equal((await third.session()).recovered, true)
  third.socket.terminate()
  await waitFor(() => !app.hub.clients.has(id), 2000, 'the third socket gone')
  const fourth = await rawSession(t, url, { id, token })
  assert.equal((await fourth.session()).recovered, false)
})

test('a half-open socket (no close ever reached the hub) is probed and its session moves to the resuming one', async (t) => {
  const { app, url, port } = await startRecoveryHub(t)
  const proxy = await startLinkProxy(t, port)
  const first = await rawSession(t, `ws://127.0.0.1:${proxy.port}/ticks`)
  const { id, token } = await first.session()
  // Nothing flows any more, and nothing is closed: the hub still holds the client.
  proxy.pause()
  ticksOf(app).sendEventTo(id, 'tick', { n: 1, from: 'hub', to: id })
  const started = Date.now()
  const resumed = await rawSession(t, url, { id, token })
  assert.equal((await resumed.session()).recovered, true)
  const waited = Date.now() - started
  assert.ok(waited >= 900, `the resume waited for the probe (${waited} ms)`)
  await waitFor(() => resumed.frames.some(frame => frame.type === 'tick'), 2000, 'the tick sent to the half-open socket')
  assert.deepEqual(resumed.frames.filter(frame => frame.type === 'tick').map(frame => (frame.data as { n: number }).n), [1])
})

test('too long away, history trimmed past the client, or more missed than maxMessages: a fresh session, nothing replayed', async (t) => {
  const { app, url } = await startRecoveryHub(t, { recovery: { maxDisconnection: 300, maxMessages: 10 } })
  const away = await rawSession(t, url)
  const expired = await away.session()
  away.socket.terminate()
  await waitFor(() => app.hub.clients.size === 0, 2000, 'gone')
  await sleep(450)
  const late = await rawSession(t, url, { id: expired.id, token: expired.token })
  assert.equal((await late.session()).recovered, false)

  const trimmed = await rawSession(t, url)
  const session = await trimmed.session()
  ticksOf(app).broadcastEvent('tick', { n: 1, from: 'hub', to: '*' })
  await waitFor(() => trimmed.frames.length === 2, 2000, 'one tick')
  const positions = trimmed.positions()
  trimmed.socket.terminate()
  await waitFor(() => !app.hub.clients.has(session.id), 2000, 'gone')
  for (let n = 2; n <= 13; n++) ticksOf(app).broadcastEvent('tick', { n, from: 'hub', to: '*' })
  const resumed = await rawSession(t, url, { id: session.id, token: session.token, positions })
  const fresh = await resumed.session()
  assert.equal(fresh.recovered, false)
  assert.notEqual(fresh.id, session.id)
  await sleep(100)
  assert.deepEqual(resumed.frames.filter(frame => frame.type === 'tick'), [], 'nothing replayed to a fresh session')
})

test('untyped routes have no sessions, and recovery needs an adapter with a history store', async (t) => {
  const { url } = await startRecoveryHub(t)
  const raw = await connect(url.replace('/ticks', '/raw'))
  await raw.received(1)
  await sleep(50)
  assert.deepEqual(raw.messages.filter(text => text.includes('$session')), [])
  const noHistory = { start () {}, publish: () => false, clusterCount: async () => 0, clusterRoomSize: async () => 0, close () {} }
  await assert.rejects(startRecoveryHub(t, { adapter: noHistory }), /recovery.*no history/)
})

test('the replay follows live delivery\'s rules: a broadcast to two rooms once, none to the excepted client, not a room it left', async (t) => {
  const { app, url } = await startRecoveryHub(t)
  const hub = ticksOf(app)
  const first = await rawSession(t, url)
  const { id, token } = await first.session()
  for (const room of ['a', 'b', 'gone']) {
    first.socket.send(JSON.stringify({ type: 'join', data: { room }, id: room }))
  }
  first.socket.send(JSON.stringify({ type: 'leave', data: { room: 'gone' }, id: 'left' }))
  await waitFor(() => first.frames.some(frame => (frame as { id?: string }).id === 'left'), 2000, 'joins and the leave answered')
  hub.broadcastEvent('tick', { n: 1, from: 'hub', to: 'a' }, { room: 'a' })
  await waitFor(() => first.frames.some(frame => frame.type === 'tick'), 2000, 'a live tick')
  const positions = first.positions()
  first.socket.terminate()
  await waitFor(() => !app.hub.clients.has(id), 2000, 'gone')

  hub.broadcastEvent('tick', { n: 2, from: 'hub', to: 'a+b' }, { room: ['a', 'b'] })
  hub.broadcastEvent('tick', { n: 100, from: 'hub', to: 'b' }, { room: 'b', except: id })
  hub.broadcastEvent('tick', { n: 101, from: 'hub', to: 'gone' }, { room: 'gone' })
  hub.broadcastEvent('tick', { n: 3, from: 'hub', to: 'b+a' }, { room: ['b', 'a'] })
  hub.broadcastEvent('tick', { n: 4, from: 'hub', to: '*' })

  const back = await rawSession(t, url, { id, token, positions })
  assert.equal((await back.session()).recovered, true)
  await waitFor(() => back.frames.filter(frame => frame.type === 'tick').length >= 3, 2000, 'the replay')
  await sleep(100)
  assert.deepEqual(back.frames.filter(frame => frame.type === 'tick').map(frame => (frame.data as { n: number }).n), [2, 3, 4])
  assert.deepEqual([...app.hub.clients.get(id)?.rooms ?? []].sort(), ['a', 'b'])
})

test('a client too slow for a burst is closed 1013 instead of losing events, and catches up by resuming', async (t) => {
  const { app, port } = await startRecoveryHub(t, { maxBufferedBytes: 16 * 1024, maxBurstBytes: 16 * 1024, shutdownTimeout: 500 })
  const proxy = await startLinkProxy(t, port)
  const { client, log } = tickClient(t, `ws://127.0.0.1:${proxy.port}/ticks`)
  await sessions(log, 1)
  const id = log.sessions[0]?.id as string
  // The client stops reading: what the hub writes piles up in its socket until it is a slow consumer.
  proxy.pause()
  const padding = 'x'.repeat(400)
  const hub = ticksOf(app)
  for (let n = 1; n <= 3000; n++) hub.sendEventTo(id, 'tick', { n, from: 'hub', to: padding })
  await waitFor(() => !app.hub.clients.has(id), 5000, 'the slow client closed')
  proxy.resume()
  await sessions(log, 2, 8000)
  assert.deepEqual(log.sessions[1], { id, recovered: true })
  await waitFor(() => log.ticks.length >= 3000, 8000, `3000 ticks (got ${log.ticks.length})`)
  await sleep(50)
  assert.equal(checkTicks(log, { hub: 3000 }), '')
  assert.equal(client.status, 'open')
  assert.ok(app.hub.stats().recoveryCloses >= 1, 'closed 1013 to resume, not dropped')
  assert.equal(app.hub.stats().slowConsumerCloses, 0)
})
