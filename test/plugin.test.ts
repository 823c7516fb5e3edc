import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import fastifyWsHub, { WebsocketHandshakeSuccess, WebsocketServerPingMsg } from '../dist/index.js'
import { connect, createApp, listen } from './helpers.js'

test('the seed constants are exported verbatim', () => {
  assert.equal(WebsocketHandshakeSuccess, '{"code":2000,"msg":"ws连接成功","data":""}')
  assert.equal(WebsocketServerPingMsg, 'Server->Ping->Client')
})

test('a client gets the handshake message once it is registered', async (t) => {
  const app = await createApp(t)
  let countAtOpen = -1
  app.hub.route({ url: '/ws', onOpen (client) { countAtOpen = client.hub.onlineCount() } })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  assert.deepEqual(await client.received(1), [WebsocketHandshakeSuccess])
  assert.equal(countAtOpen, 1)
})

test('registering the plugin twice on one instance fails', async () => {
  const app = Fastify()
  await app.register(fastifyWsHub)
  app.register(fastifyWsHub)
  await assert.rejects(async () => { await app.ready() }, { code: 'FST_WS_HUB_ALREADY_REGISTERED' })
  await app.close()
})

test('the header deadline is left alone on servers without one (HTTP/2) and, with a warning, on one that already listens', async () => {
  const { createServer } = await import('node:http')
  const http2App = Fastify({ http2: true })
  await http2App.register(fastifyWsHub, { heartbeat: false })
  await http2App.close()

  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const logs: string[] = []
  const app = Fastify({ serverFactory: () => server, logger: { level: 'warn', stream: { write: (line: string) => logs.push(line) } } })
  await app.register(fastifyWsHub, { heartbeat: false })
  assert.ok(logs.some(line => line.includes('headersTimeout cannot be tightened')))
  assert.equal(server.headersTimeout, 60_000)
  await app.close()
  await new Promise(resolve => server.close(resolve))
})

test('@fastify/websocket registered after the hub fails registration with FST_WS_HUB_WEBSOCKET_AFTER_HUB, not a process crash', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(fastifyWsHub, { heartbeat: false })
  await assert.rejects(async () => { await app.register(fastifyWebsocket) }, { code: 'FST_WS_HUB_WEBSOCKET_AFTER_HUB', message: /register @fastify\/websocket before the hub/ })
})

test('an ES module namespace of @fastify/websocket is recognised too', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(fastifyWsHub, { heartbeat: false })
  app.register(import('@fastify/websocket'))
  await assert.rejects(async () => { await app.ready() }, { code: 'FST_WS_HUB_WEBSOCKET_AFTER_HUB' })
})
