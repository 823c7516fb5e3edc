import assert from 'node:assert/strict'
import { connect as netConnect } from 'node:net'
import { test } from 'node:test'
import { isDeepStrictEqual } from 'node:util'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import fastifyWsHub from '../dist/index.js'
import { connect, listen, sleep, stopReading, waitFor } from './helpers.js'
import { activeResources } from './probes.js'

/**
 * The handles a hub could leave open: sockets, servers and ref'd timers. Only these are compared:
 * the runtime opens others of its own on some Node versions (ConnectWrap, FSReqPromise on 22).
 */
function handleCensus (): Record<string, number> {
  return Object.fromEntries(['TCPSocketWrap', 'TCPServerWrap', 'Timeout'].map(type => [type, activeResources(type)]))
}

/**
 * Resolves once shutdown has begun: the hub has taken the server's upgrade listeners (`before`,
 * read before app.close()) away, to answer late upgrades 503.
 */
async function shutdownBegan (app: FastifyInstance, before: Function[]): Promise<void> {
  await waitFor(() => !app.server.listeners('upgrade').some(listener => before.includes(listener)), 5000, 'shutdown to take the upgrade listeners')
}

test('app.close() closes every client with 1001, runs every onClose, and leaves no handle open', async () => {
  const before = handleCensus()
  const app = Fastify()
  await app.register(fastifyWsHub, { heartbeat: { interval: 50 } })
  const closes: number[] = []
  app.hub.route({
    url: '/ws',
    onOpen (client) { client.join('room') },
    async onClose (_client, code) {
      await sleep(20)
      closes.push(code)
    }
  })
  const url = await listen(app)
  const clients = await Promise.all(Array.from({ length: 20 }, () => connect(`${url}/ws`)))
  await waitFor(() => app.hub.onlineCount() === 20)
  const started = Date.now()
  await app.close()
  const seen = await Promise.all(clients.map(client => client.closed))
  assert.ok(Date.now() - started < 2000)
  assert.ok(seen.every(close => close.code === 1001 && close.reason === 'server shutdown'))
  assert.equal(closes.length, 20, 'every onClose ran before close() resolved')
  assert.ok(closes.every(code => code === 1001))
  assert.equal(app.hub.onlineCount(), 0)
  assert.equal(app.hub.roomSize('room'), 0)
  assert.equal(app.server.listenerCount('upgrade'), 0, 'no upgrade listener is left')
  for (const client of clients) client.socket.terminate()
  // Closed sockets release their handles a few turns later: wait (bounded), then compare.
  await waitFor(() => isDeepStrictEqual(handleCensus(), before), 5000, 'handles back to the census before').catch(() => {})
  assert.deepEqual(handleCensus(), before)
})

test('clients that never answer the close handshake are terminated after shutdownTimeout', async () => {
  const app = Fastify()
  await app.register(fastifyWsHub, { heartbeat: false, shutdownTimeout: 200 })
  const closes: number[] = []
  app.hub.route({ url: '/ws', onClose (_client, code) { closes.push(code) } })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  await waitFor(() => app.hub.onlineCount() === 1)
  // Stop reading: the close frame is never seen, so the close handshake never completes.
  stopReading(client, { deaf: true })
  const started = Date.now()
  await app.close()
  const elapsed = Date.now() - started
  assert.ok(elapsed >= 190 && elapsed < 1500, `closed after ${elapsed} ms`)
  assert.deepEqual(closes, [1006])
  client.socket.terminate()
})

test('an upgrade that arrives during shutdown is answered 503', async () => {
  const app = Fastify()
  await app.register(fastifyWsHub, { heartbeat: false, shutdownTimeout: 1000 })
  let release: (() => void) | undefined
  // The hub calls onClose once it closes its clients, after it put its 503 refuser in place; the
  // refuser stays until close() is done, which this onClose holds.
  app.hub.route({ url: '/ws', onClose: () => new Promise<void>(resolve => { release = resolve }) })
  const url = await listen(app)
  const port = Number(new URL(url).port)
  await connect(`${url}/ws`)
  await waitFor(() => app.hub.onlineCount() === 1)
  const lateSocket = netConnect(port, '127.0.0.1')
  await new Promise(resolve => lateSocket.once('connect', resolve))
  const closing = app.close()
  await waitFor(() => release !== undefined, 5000, 'shutdown to close the client')
  let response = ''
  lateSocket.on('data', chunk => { response += chunk.toString() })
  lateSocket.write('GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  await new Promise(resolve => lateSocket.once('close', resolve))
  assert.match(response, /^HTTP\/1\.1 503 /)
  release?.()
  await closing
})

test('with @fastify/websocket registered first, app.close() still closes every client with 1001 and runs onClose', async () => {
  const app = Fastify()
  await app.register(fastifyWebsocket)
  await app.register(fastifyWsHub, { heartbeat: false })
  const closes: number[] = []
  app.hub.route({ url: '/ws', onClose (_client, code) { closes.push(code) } })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  await waitFor(() => app.hub.onlineCount() === 1)
  await app.close()
  assert.deepEqual(await client.closed, { code: 1001, reason: 'server shutdown' })
  assert.deepEqual(closes, [1001])
})

test('an upgrade whose onUpgrade finishes after shutdown began is refused 503 and never opened', async () => {
  const app = Fastify()
  await app.register(fastifyWsHub, { heartbeat: false })
  let opened = 0
  let entered: () => void = () => {}
  const inUpgrade = new Promise<void>(resolve => { entered = resolve })
  let finishUpgrade: () => void = () => {}
  app.hub.route({
    url: '/ws',
    async onUpgrade () {
      entered()
      await new Promise<void>(resolve => { finishUpgrade = resolve })
      return {}
    },
    onOpen () { opened++ }
  })
  const url = await listen(app)
  const pending = connect(`${url}/ws`)
  await inUpgrade
  const upgradeListeners = app.server.listeners('upgrade')
  const closing = app.close()
  await shutdownBegan(app, upgradeListeners)
  finishUpgrade()
  await assert.rejects(pending, { statusCode: 503 })
  await closing
  assert.equal(opened, 0)
})

test('an onClose that never settles delays app.close() by at most two shutdownTimeouts, with a warning', async () => {
  const logs: string[] = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => logs.push(line) } } })
  await app.register(fastifyWsHub, { heartbeat: false, shutdownTimeout: 100 })
  app.hub.route({ url: '/ws', onClose: () => new Promise<void>(() => {}) })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  await waitFor(() => app.hub.onlineCount() === 1)
  const started = Date.now()
  await app.close()
  const elapsed = Date.now() - started
  assert.ok(elapsed >= 190 && elapsed < 1500, `closed after ${elapsed} ms`)
  assert.ok(logs.some(line => line.includes('onClose hooks still running')))
  assert.equal((await client.closed).code, 1001)
})

test('with @fastify/websocket registered first and a preClose that keeps its server open, an upgrade whose onUpgrade finishes during shutdown is refused 503, never opened', async () => {
  const app = Fastify()
  await app.register(fastifyWebsocket, { preClose: (done) => done() })
  await app.register(fastifyWsHub, { heartbeat: false, shutdownTimeout: 200 })
  let opened = 0
  let entered: () => void = () => {}
  const inUpgrade = new Promise<void>(resolve => { entered = resolve })
  let finishUpgrade: () => void = () => {}
  const upgradeHeld = new Promise<void>(resolve => { finishUpgrade = resolve })
  app.hub.route({
    url: '/ws',
    async onUpgrade () {
      entered()
      await upgradeHeld
      return {}
    },
    onOpen () { opened++ }
  })
  const url = await listen(app)
  const pending = connect(`${url}/ws`)
  await inUpgrade
  const upgradeListeners = app.server.listeners('upgrade')
  const closing = app.close()
  await shutdownBegan(app, upgradeListeners)
  finishUpgrade()
  await assert.rejects(pending, { statusCode: 503 })
  await closing
  assert.equal(opened, 0)
  assert.equal(app.hub.onlineCount(), 0)
  app.websocketServer.close()
})

test('sockets of plain @fastify/websocket routes on the server the hub registered get 1001 too, and do not hold app.close()', async () => {
  const app = Fastify()
  await app.register(fastifyWsHub, { heartbeat: false, shutdownTimeout: 300 })
  app.get('/plain', { websocket: true }, (socket) => { socket.on('message', () => socket.send('plain echo')) })
  app.hub.route({ url: '/ws' })
  const url = await listen(app)
  const plain = await connect(`${url}/plain`)
  const silent = await connect(`${url}/plain`)
  const hubClient = await connect(`${url}/ws`)
  plain.socket.send('x')
  assert.deepEqual(await plain.received(1), ['plain echo'])
  // This one never answers the close handshake: it is terminated after shutdownTimeout.
  stopReading(silent, { deaf: true })
  const started = Date.now()
  await app.close()
  const elapsed = Date.now() - started
  assert.ok(elapsed < 1500, `closed after ${elapsed} ms`)
  assert.deepEqual(await plain.closed, { code: 1001, reason: 'server shutdown' })
  assert.equal((await hubClient.closed).code, 1001)
  silent.socket.terminate()
})
