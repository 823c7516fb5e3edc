import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WebsocketServerPingMsg, type Client } from '../dist/index.js'
import { connect, createApp, listen, sleep, stopReading, waitFor } from './helpers.js'

const interval = 60
const maxFailures = 3

test('a client that stops answering pings is terminated within (maxFailures + 1) x interval', async (t) => {
  const app = await createApp(t, { heartbeat: { interval, maxFailures }, handshakeMessage: false })
  const closes: number[] = []
  let failuresSeen = 0
  app.hub.route({
    url: '/ws',
    onOpen (client) {
      const probe = setInterval(() => { failuresSeen = Math.max(failuresSeen, client.heartbeatFailures) }, 5)
      client.socket.once('close', () => clearInterval(probe))
    },
    onClose (_client, code) { closes.push(code) }
  })
  const url = await listen(app)
  const started = Date.now()
  const dead = await connect(`${url}/ws`, { autoPong: false })
  const pings: string[] = []
  dead.socket.on('ping', (payload: Buffer) => pings.push(payload.toString()))
  const { code } = await dead.closed
  const elapsed = Date.now() - started
  assert.equal(code, 1006)
  assert.ok(elapsed <= (maxFailures + 1) * interval + 2 * interval, `terminated after ${elapsed} ms`)
  assert.ok(elapsed >= maxFailures * interval, `not before ${maxFailures} unanswered pings (${elapsed} ms)`)
  assert.ok(pings.length >= maxFailures)
  assert.ok(pings.every(payload => payload === WebsocketServerPingMsg))
  await waitFor(() => closes.length === 1)
  assert.deepEqual(closes, [1006])
  assert.ok(failuresSeen >= maxFailures - 1)
  assert.equal(app.hub.stats().heartbeatTimeouts, 1)
})

test('a live client answering pings is never dropped, even when it sends nothing', async (t) => {
  const app = await createApp(t, { heartbeat: { interval, maxFailures: 1 }, handshakeMessage: false })
  app.hub.route({ url: '/ws' })
  const url = await listen(app)
  const live = await connect(`${url}/ws`)
  let pings = 0
  live.socket.on('ping', () => { pings++ })
  await sleep(interval * 12)
  assert.equal(live.socket.readyState, live.socket.OPEN)
  assert.ok(pings >= 8, `${pings} pings`)
  assert.equal(app.hub.onlineCount(), 1)
  assert.equal(app.hub.stats().heartbeatTimeouts, 0)
})

test('a slow async onMessage does not count as unanswered pings', async (t) => {
  const app = await createApp(t, { heartbeat: { interval: 30, maxFailures: 2 }, readTimeout: 100, handshakeMessage: false })
  let done = false
  app.hub.route({
    url: '/ws',
    async onMessage (client) {
      await sleep(400)
      done = true
      client.send('finished')
    }
  })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  client.socket.send('slow')
  assert.deepEqual(await client.received(1, 3000), ['finished'])
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

test('a client silent for readTimeout is closed with 1001 idle; messages keep it alive', async (t) => {
  const app = await createApp(t, { readTimeout: 150, handshakeMessage: false })
  app.hub.route({ url: '/ws' })
  const url = await listen(app)
  const chatty = await connect(`${url}/ws`)
  const silent = await connect(`${url}/ws`)
  const keepAlive = setInterval(() => chatty.socket.send('.'), 40)
  t.after(() => clearInterval(keepAlive))
  const started = Date.now()
  assert.deepEqual(await silent.closed, { code: 1001, reason: 'idle' })
  assert.ok(Date.now() - started < 150 + 200)
  assert.equal(chatty.socket.readyState, chatty.socket.OPEN)
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
  await waitFor(() => slowServerSide?.state !== 'open', 2000, 'slow consumer close')
  await waitFor(() => slowServerSide?.state === 'closed', 2000, 'slow consumer terminated')
  assert.equal(app.hub.stats().slowConsumerCloses, 1)
  await waitFor(() => fastCount === broadcasts, 3000, 'fast client got everything')
})

test('with more clients than one slice, a ping sweep reaches every client and drops none', async (t) => {
  const app = await createApp(t, { heartbeat: { interval: 40, maxFailures: 2 }, handshakeMessage: false })
  app.hub.route({ url: '/ws' })
  const url = await listen(app)
  const clients = await Promise.all(Array.from({ length: 300 }, () => connect(`${url}/ws`)))
  t.after(() => { for (const client of clients) client.socket.terminate() })
  const pinged = new Set<number>()
  clients.forEach((client, index) => client.socket.on('ping', () => pinged.add(index)))
  await waitFor(() => pinged.size === clients.length, 3000, 'every client pinged')
  await sleep(200)
  assert.equal(app.hub.onlineCount(), 300)
  assert.equal(app.hub.stats().heartbeatTimeouts, 0)
})

test('one send larger than maxBufferedBytes + maxBurstBytes marks a client that stops reading slow; it is closed after writeTimeout', async (t) => {
  const app = await createApp(t, { maxBufferedBytes: 64 * 1024, writeTimeout: 150, shutdownTimeout: 200, handshakeMessage: false })
  let server: Client | undefined
  app.hub.route({ url: '/ws', onOpen (client) { server = client as Client } })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  await waitFor(() => server !== undefined)
  stopReading(client)
  assert.equal(server?.send(Buffer.alloc(32 * 1024 * 1024)), true, 'written: the buffer was below the mark')
  assert.equal(server?.send('same turn'), false, 'dropped: over maxBufferedBytes + maxBurstBytes')
  await new Promise(resolve => setImmediate(resolve))
  assert.ok((server?.socket.bufferedAmount ?? 0) > 64 * 1024, 'the kernel did not take it all')
  assert.equal(server?.send('next turn'), false, 'dropped: the buffer was above the mark when the turn began')
  await waitFor(() => app.hub.stats().slowConsumerCloses === 1, 3000, 'slow consumer close')
  await waitFor(() => server?.state === 'closed', 3000, 'terminated after the close grace')
})
