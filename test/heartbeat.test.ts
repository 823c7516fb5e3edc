import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WebsocketServerPingMsg, type Client } from '../dist/index.js'
import { connect, createApp, listen, nextTurn, sleep, stopReading, waitFor } from './helpers.js'
import { RawClient } from './raw-client.js'

test('a client that stops answering pings is terminated within (maxFailures + 1) x interval', async (t) => {
  const interval = 100
  const maxFailures = 3
  const app = await createApp(t, { heartbeat: { interval, maxFailures }, handshakeMessage: false })
  const closes: Array<{ code: number, failures: number }> = []
  app.hub.route({
    url: '/ws',
    onClose (client, code) { closes.push({ code, failures: client.heartbeatFailures }) }
  })
  const { port } = new URL(await listen(app))
  const started = Date.now()
  // A raw client never answers pings, and sees every frame from the upgrade response on (a ping
  // may arrive with it).
  const dead = await RawClient.upgrade(Number(port), '/ws')
  t.after(() => dead.destroy())
  const { code } = await dead.closed
  const elapsed = Date.now() - started
  const pings = dead.frames.filter(frame => frame.opcode === 9).map(frame => frame.payload.toString())
  // What the client saw: dropped without a close frame, after maxFailures unanswered pings (one
  // more at most, should a sweep land between its pings and the terminating one).
  assert.equal(code, 1006)
  assert.ok(pings.length >= maxFailures && pings.length <= maxFailures + 1, `${pings.length} pings before the drop`)
  assert.ok(pings.every(payload => payload === WebsocketServerPingMsg))
  // Sweeps that ping are at least one interval apart, so no machine terminates it sooner; a
  // loaded one runs the sweeps late, hence the second of slack above the nominal deadline.
  assert.ok(elapsed >= maxFailures * interval, `not before ${maxFailures} unanswered pings (${elapsed} ms)`)
  assert.ok(elapsed <= (maxFailures + 1) * interval + 1000, `terminated after ${elapsed} ms`)
  await waitFor(() => closes.length === 1)
  assert.deepEqual(closes, [{ code: 1006, failures: maxFailures }])
  assert.equal(app.hub.stats().heartbeatTimeouts, 1)
})

test('a live client answering pings is never dropped, even when it sends nothing', async (t) => {
  // maxFailures 3: after a stall, timers run before sockets are read, so a pong can be read one
  // sweep late on a loaded machine; that is not a dead client.
  const interval = 200
  const app = await createApp(t, { heartbeat: { interval, maxFailures: 3 }, handshakeMessage: false })
  app.hub.route({ url: '/ws' })
  const url = await listen(app)
  const live = await connect(`${url}/ws`)
  let pings = 0
  live.socket.on('ping', () => { pings++ })
  await waitFor(() => pings >= 8 || live.socket.readyState !== live.socket.OPEN, 10_000, '8 pings')
  assert.equal(live.socket.readyState, live.socket.OPEN)
  assert.ok(pings >= 8, `${pings} pings`)
  assert.equal(app.hub.onlineCount(), 1)
  assert.equal(app.hub.stats().heartbeatTimeouts, 0)
})

test('a slow async onMessage does not count as unanswered pings', async (t) => {
  // The handler runs far longer than both deadlines: (maxFailures + 1) x interval = 400 ms, readTimeout 400 ms.
  const app = await createApp(t, { heartbeat: { interval: 100, maxFailures: 3 }, readTimeout: 400, handshakeMessage: false })
  let done = false
  app.hub.route({
    url: '/ws',
    async onMessage (client) {
      await sleep(1200)
      done = true
      client.send('finished')
    }
  })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  client.socket.send('slow')
  assert.deepEqual(await client.received(1, 10_000), ['finished'])
  assert.ok(done)
  assert.equal(app.hub.stats().heartbeatTimeouts, 0)
  assert.equal(app.hub.stats().idleCloses, 0)
})

test('the heartbeat payload option is what the pings carry', async (t) => {
  const app = await createApp(t, { heartbeat: { interval: 20, payload: 'custom' }, handshakeMessage: false })
  app.hub.route({ url: '/ws' })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  const [payload] = await new Promise<Buffer[]>(resolve => client.socket.once('ping', (data: Buffer) => resolve([data])))
  assert.equal(payload?.toString(), 'custom')
})

/**
 * Waits for a silent client's close and checks it is 1001 idle, never before readTimeout: the
 * sweep runs every readTimeout / 4, and a loaded machine runs it late, hence the second of slack.
 */
async function closedAsIdle (silent: Awaited<ReturnType<typeof connect>>, started: number, readTimeout: number): Promise<void> {
  assert.deepEqual(await silent.closed, { code: 1001, reason: 'idle' })
  const elapsed = Date.now() - started
  assert.ok(elapsed >= readTimeout, `closed as idle after ${elapsed} ms, before readTimeout`)
  assert.ok(elapsed <= readTimeout * 1.25 + 1000, `closed as idle after ${elapsed} ms`)
}

test('a client silent for readTimeout is closed with 1001 idle; messages keep it alive', async (t) => {
  const readTimeout = 1000
  const app = await createApp(t, { readTimeout, handshakeMessage: false })
  app.hub.route({ url: '/ws' })
  const url = await listen(app)
  const chatty = await connect(`${url}/ws`)
  const keepAlive = setInterval(() => chatty.socket.send('.'), 100)
  t.after(() => clearInterval(keepAlive))
  // Taken before the silent client connects: the server saw it no earlier than this.
  const started = Date.now()
  await closedAsIdle(await connect(`${url}/ws`), started, readTimeout)
  // The chatty client has by now been connected longer than readTimeout: its messages kept it.
  assert.equal(chatty.socket.readyState, chatty.socket.OPEN)
  assert.equal(app.hub.stats().idleCloses, 1)
})

test('a client that opens on a hub with no other client, and stays silent, is closed as idle on time', async (t) => {
  // The default writeTimeout: the heartbeat walks its clients only when something can be due, and
  // a client that opens after a walk over no client at all must still be one of those things.
  const readTimeout = 600
  const app = await createApp(t, { readTimeout, handshakeMessage: false })
  app.hub.route({ url: '/ws' })
  const url = await listen(app)
  // Let a few ticks pass over the empty hub first.
  await sleep(400)
  // Within the bound below: far sooner than the walk that writeTimeout / 4 (8.75 s) forces anyway.
  const started = Date.now()
  await closedAsIdle(await connect(`${url}/ws`), started, readTimeout)
  assert.equal(app.hub.stats().idleCloses, 1)
})

test('a client above maxBufferedBytes for writeTimeout is closed with 1008 slow consumer; broadcasts skip it meanwhile', async (t) => {
  const app = await createApp(t, { maxBufferedBytes: 64 * 1024, writeTimeout: 200, shutdownTimeout: 300, handshakeMessage: false })
  let slowServerSide: Client | undefined
  app.hub.route({ url: '/ws', onOpen (client) { if ((client.request.query as { slow?: string }).slow === '1') slowServerSide = client as Client } })
  const url = await listen(app)
  const fast = await connect(`${url}/ws`)
  const slow = await connect(`${url}/ws?slow=1`)
  await waitFor(() => slowServerSide !== undefined)
  // Stop reading on the slow client: the kernel buffers fill, then the server-side buffer grows.
  stopReading(slow)
  const chunk = Buffer.alloc(16 * 1024, 1)
  let fastCount = 0
  fast.socket.on('message', () => { fastCount++ })
  let broadcasts = 0
  // One broadcast per turn: the mark is judged on what a client still holds when a turn begins.
  const deadline = Date.now() + 5000
  while ((slowServerSide as Client).socket.bufferedAmount <= 64 * 1024) {
    assert.ok(Date.now() < deadline, 'the slow client did not pass the mark within 5 s')
    app.hub.broadcast(chunk)
    broadcasts++
    await new Promise(resolve => setImmediate(resolve))
  }
  const dropped = app.hub.broadcast(chunk)
  broadcasts++
  assert.equal(dropped, 1, 'only the fast client is written')
  assert.ok(app.hub.stats().dropped >= 1)
  await waitFor(() => slowServerSide?.state !== 'open', 5000, 'slow consumer close')
  await waitFor(() => slowServerSide?.state === 'closed', 5000, 'slow consumer terminated')
  assert.equal(app.hub.stats().slowConsumerCloses, 1)
  await waitFor(() => fastCount === broadcasts, 5000, 'fast client got everything')
})

test('with more clients than one slice, a ping sweep reaches every client and drops none', async (t) => {
  const app = await createApp(t, { heartbeat: { interval: 250, maxFailures: 3 }, handshakeMessage: false })
  app.hub.route({ url: '/ws' })
  const url = await listen(app)
  const clients = await Promise.all(Array.from({ length: 300 }, () => connect(`${url}/ws`)))
  t.after(() => { for (const client of clients) client.socket.terminate() })
  const pings = clients.map(() => 0)
  clients.forEach((client, index) => client.socket.on('ping', () => { pings[index] = (pings[index] ?? 0) + 1 }))
  // Three sweeps each: a client the sweeps skipped, or whose pongs were not counted, is dropped by then.
  await waitFor(() => pings.every(count => count >= 3) || app.hub.stats().heartbeatTimeouts > 0, 10_000, 'three pings to every client')
  assert.equal(app.hub.stats().heartbeatTimeouts, 0)
  assert.ok(pings.every(count => count >= 3), `fewest pings: ${Math.min(...pings)}`)
  assert.equal(app.hub.onlineCount(), 300)
})

test('once a turn has written over maxBufferedBytes + maxBurstBytes to a client that stops reading, sends are refused; it is closed 1008 after writeTimeout', async (t) => {
  const maxBufferedBytes = 64 * 1024
  const maxBurstBytes = 1024 * 1024
  const writeTimeout = 150
  const app = await createApp(t, { maxBufferedBytes, maxBurstBytes, writeTimeout, shutdownTimeout: 200, handshakeMessage: false })
  let server: Client | undefined
  app.hub.route({ url: '/ws', onOpen (client) { server = client as Client } })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  await waitFor(() => server !== undefined)
  const target = server as Client
  stopReading(client)
  // One turn of 1 MiB sends: the kernel takes what fits in its buffers (their size varies from
  // machine to machine), the rest stays unsent. Each send is taken while the unsent bytes are
  // within the ceiling, and refused once they are over it.
  const chunk = Buffer.alloc(1024 * 1024)
  const deadline = Date.now() + 10_000
  let written = 0
  let refusedAt = 0
  while (refusedAt === 0) {
    assert.ok(Date.now() < deadline, `no send refused within 10 s (${written} MiB taken)`)
    const unsent = target.socket.bufferedAmount
    const at = Date.now()
    const taken = target.send(chunk)
    assert.equal(taken, unsent <= maxBufferedBytes + maxBurstBytes, `send ${written + 1} with ${unsent} bytes unsent`)
    if (taken) written++
    else refusedAt = at
  }
  assert.equal(target.send('same turn'), false, 'dropped: over maxBufferedBytes + maxBurstBytes')
  await nextTurn()
  assert.ok(target.socket.bufferedAmount > maxBufferedBytes, 'the client, not reading, is still over the mark')
  assert.equal(target.send('next turn'), false, 'dropped: the buffer was above the mark when the turn began')
  await waitFor(() => app.hub.stats().slowConsumerCloses === 1, 5000, 'slow consumer close')
  // Polled: seen no sooner than it happened, so an early close cannot pass unseen.
  const closedAfter = Date.now() - refusedAt
  assert.ok(closedAfter >= writeTimeout, `closed ${closedAfter} ms after the first refused send, before writeTimeout`)
  assert.notEqual(target.state, 'open')
  await waitFor(() => target.state === 'closed', 5000, 'terminated after the close grace')
  t.diagnostic(`${written} MiB taken in one turn before the refusal; closed 1008 ${closedAfter} ms later`)
})
