import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import fastifyWsHub, { type Client } from '../dist/index.js'
import { connect, createApp, listen, sleep, waitFor } from './helpers.js'

test('messages are handled one at a time, in order, while an async onMessage pauses the socket', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  const handled: string[] = []
  let running = 0
  let maxRunning = 0
  let pausedWhileRunning = true
  app.hub.route({
    url: '/ws',
    async onMessage (client, data) {
      running++
      maxRunning = Math.max(maxRunning, running)
      await sleep(2)
      pausedWhileRunning &&= client.socket.isPaused
      handled.push(String(data))
      running--
    }
  })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  const sent = Array.from({ length: 200 }, (_, index) => `m${index}`)
  for (const message of sent) client.socket.send(message)
  // 200 handlers one after the other, each a timer long: seconds on a loaded machine.
  await waitFor(() => handled.length === sent.length, 20_000, 'all messages handled')
  assert.deepEqual(handled, sent)
  assert.equal(maxRunning, 1)
  assert.ok(pausedWhileRunning, 'the socket is paused while a handler runs')
  assert.equal(app.hub.clients.values().next().value?.socket.isPaused, false)
})

test('a message sent right after the upgrade is not lost while an async onOpen runs', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  const events: string[] = []
  app.hub.route({
    url: '/ws',
    async onOpen () {
      await sleep(100)
      events.push('open done')
    },
    onMessage (_client, data) { events.push(`message ${String(data)}`) }
  })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  client.socket.send('first')
  client.socket.send('second')
  await waitFor(() => events.length === 3, 5000, 'onOpen and both messages')
  assert.deepEqual(events, ['open done', 'message first', 'message second'])
})

test('text frames arrive as strings, binary frames as Buffers', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  const received: Array<[string, boolean, boolean]> = []
  app.hub.route({
    url: '/ws',
    onMessage (_client, data, isBinary) { received.push([typeof data === 'string' ? data : data.toString('hex'), isBinary, Buffer.isBuffer(data)]) }
  })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  client.socket.send('héllo')
  client.socket.send(Buffer.from([1, 2, 255]))
  await waitFor(() => received.length === 2)
  assert.deepEqual(received, [['héllo', false, false], ['0102ff', true, true]])
})

for (const [where, mode] of [['onMessage', 'sync'], ['onMessage', 'async'], ['onOpen', 'sync'], ['onOpen', 'async']] as const) {
  test(`a ${mode} error in ${where} calls onError, closes that client with 1011, and the others go on`, async (t) => {
    const app = await createApp(t, { handshakeMessage: false })
    const errors: string[] = []
    const closes: number[] = []
    const fail = (): void => { throw new Error(`boom in ${where}`) }
    app.hub.route({
      url: '/ws',
      onOpen (client) {
        const isVictim = (client.request.query as { victim?: string }).victim === '1'
        if (where !== 'onOpen' || !isVictim) return
        if (mode === 'sync') fail()
        return Promise.reject(new Error(`boom in ${where}`))
      },
      onMessage (client, data) {
        if (data === 'explode') {
          if (mode === 'sync') fail()
          return Promise.reject(new Error(`boom in ${where}`))
        }
        client.send(`ok ${String(data)}`)
      },
      onError (_client, error) { errors.push(error.message) },
      onClose (_client, code) { closes.push(code) }
    })
    const url = await listen(app)
    const bystander = await connect(`${url}/ws`)
    const victim = await connect(`${url}/ws?victim=1`)
    if (where === 'onMessage') victim.socket.send('explode')
    assert.equal((await victim.closed).code, 1011)
    assert.deepEqual(errors, [`boom in ${where}`])
    await waitFor(() => closes.length === 1)
    assert.deepEqual(closes, [1011])
    bystander.socket.send('still here')
    assert.deepEqual(await bystander.received(1), ['ok still here'])
    assert.equal(app.hub.onlineCount(), 1)
    assert.equal(app.hub.stats().handlerErrors, 1)
  })
}

test('a thrown non-Error value reaches onError wrapped in an Error', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  let caught: Error | undefined
  app.hub.route({
    url: '/ws',
    onMessage () { throw 'plain string' as unknown as Error }, // eslint-disable-line no-throw-literal
    onError (_client, error) { caught = error }
  })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  client.socket.send('x')
  await client.closed
  assert.ok(caught instanceof Error)
  assert.equal((caught as Error & { code: string }).code, 'FST_WS_HUB_HANDLER_ERROR')
})

test('an onError or onClose that throws is logged, not fatal', async (t) => {
  const logs: string[] = []
  const stream = { write (line: string) { logs.push(line) } }
  const app = await createApp(t, { handshakeMessage: false }, { logger: { level: 'error', stream } })
  app.hub.route({
    url: '/ws',
    onMessage () { throw new Error('first') },
    onError () { throw new Error('second') },
    async onClose () { throw new Error('third') }
  })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  client.socket.send('x')
  await client.closed
  await waitFor(() => logs.some(line => line.includes('onClose failed')))
  assert.ok(logs.some(line => line.includes('onError failed')))
})

test('without onError, a handler error is logged and the client still gets 1011', async (t) => {
  const logs: string[] = []
  const app = await createApp(t, { handshakeMessage: false }, { logger: { level: 'error', stream: { write: (line: string) => logs.push(line) } } })
  app.hub.route({ url: '/ws', onMessage () { throw new Error('unhandled') } })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  client.socket.send('x')
  assert.equal((await client.closed).code, 1011)
  assert.ok(logs.some(line => line.includes('unhandled')))
})

test('onClose runs exactly once, after the client left the hub and its rooms, with the peer code and reason', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  const closes: Array<{ code: number, reason: string, inHub: boolean, roomSize: number, state: string }> = []
  app.hub.route({
    url: '/ws',
    onOpen (client) { client.join('room') },
    onClose (client, code, reason) {
      closes.push({ code, reason, inHub: client.hub.clients.has(client.id), roomSize: client.hub.roomSize('room'), state: client.state })
    }
  })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  await waitFor(() => app.hub.roomSize('room') === 1)
  client.socket.close(4001, 'bye')
  await client.closed
  await waitFor(() => closes.length === 1)
  // A window for a second onClose to show up; a slower machine only makes it wider.
  await sleep(50)
  assert.deepEqual(closes, [{ code: 4001, reason: 'bye', inHub: false, roomSize: 0, state: 'closed' }])
})

test('onClose waits for the running handler and for the messages queued before the close', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  const events: string[] = []
  app.hub.route({
    url: '/ws',
    async onMessage (_client, data) {
      await sleep(30)
      events.push(String(data))
    },
    onClose () { events.push('close') }
  })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  client.socket.send('a')
  client.socket.send('b')
  client.socket.close()
  await waitFor(() => events.includes('close'), 5000, 'onClose')
  assert.deepEqual(events, ['a', 'b', 'close'])
})

test('a message over maxPayload closes that client with 1009, the others keep working', async (t) => {
  const app = await createApp(t, { handshakeMessage: false, maxPayload: 1000 })
  app.hub.route({ url: '/ws', onMessage (client, data) { client.send(`got ${data.length}`) } })
  const url = await listen(app)
  const other = await connect(`${url}/ws`)
  const client = await connect(`${url}/ws`)
  client.socket.send('x'.repeat(1000))
  assert.deepEqual(await client.received(1), ['got 1000'])
  client.socket.send('x'.repeat(1001))
  assert.equal((await client.closed).code, 1009)
  other.socket.send('y')
  assert.deepEqual(await other.received(1), ['got 1'])
})

test('client.close() sends the code and reason; later sends return false', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  let server: Client | undefined
  app.hub.route({ url: '/ws', onOpen (client) { server = client as Client } })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  await waitFor(() => server !== undefined)
  const target = server as Client
  assert.equal(target.state, 'open')
  target.close(4000, 'done')
  assert.equal(target.state, 'closing')
  assert.equal(target.send('late'), false)
  target.join('late-room')
  assert.equal(app.hub.roomSize('late-room'), 0)
  target.close(4001)
  assert.deepEqual(await client.closed, { code: 4000, reason: 'done' })
  await waitFor(() => target.state === 'closed')
  assert.deepEqual(client.messages, [])
})

test('client.close() with an invalid code throws and leaves the client open', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  let server: Client | undefined
  app.hub.route({ url: '/ws', onOpen (client) { server = client as Client } })
  const url = await listen(app)
  await connect(`${url}/ws`)
  await waitFor(() => server !== undefined)
  assert.throws(() => server?.close(1005), TypeError)
  assert.equal(server?.state, 'open')
})

test('client.log is a child logger bound to the client id', async (t) => {
  const logs: Array<Record<string, unknown>> = []
  const app = await createApp(t, { handshakeMessage: false }, { logger: { level: 'info', stream: { write: (line: string) => logs.push(JSON.parse(line)) } } })
  let id = ''
  app.hub.route({ url: '/ws', onOpen (client) { id = client.id; client.log.info('hello from client') } })
  const url = await listen(app)
  await connect(`${url}/ws`)
  await waitFor(() => logs.some(line => line.msg === 'hello from client'))
  const line = logs.find(entry => entry.msg === 'hello from client')
  assert.equal(line?.clientId, id)
  assert.ok(typeof line?.reqId === 'string')
})

test('a handshakeMessage function that throws is a handler error: onError, then 1011', async (t) => {
  const app = await createApp(t, { handshakeMessage: () => { throw new Error('no greeting') } })
  const errors: string[] = []
  let opened = false
  app.hub.route({ url: '/ws', onOpen () { opened = true }, onError (_client, error) { errors.push(error.message) } })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  assert.equal((await client.closed).code, 1011)
  assert.deepEqual(errors, ['no greeting'])
  assert.equal(opened, false)
})

test('an onError that rejects and an onClose that throws synchronously are logged, not fatal', async (t) => {
  const logs: string[] = []
  const app = await createApp(t, { handshakeMessage: false }, { logger: { level: 'error', stream: { write: (line: string) => logs.push(line) } } })
  let rooms = -1
  app.hub.route({
    url: '/ws',
    onOpen (client) { rooms = client.rooms.size },
    onMessage () { throw new Error('first') },
    async onError () { throw new Error('rejected in onError') },
    onClose () { throw new Error('thrown in onClose') }
  })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  client.socket.send('x')
  assert.equal((await client.closed).code, 1011)
  await waitFor(() => logs.some(line => line.includes('rejected in onError')) && logs.some(line => line.includes('thrown in onClose')))
  assert.equal(rooms, 0)
})

test('with @fastify/websocket registered first (its own maxPayload), the hub still closes a message over maxPayload with 1009', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(fastifyWebsocket)
  await app.register(fastifyWsHub, { heartbeat: false, handshakeMessage: false, maxPayload: 100 })
  const lengths: number[] = []
  app.hub.route({ url: '/ws', onMessage (_client, data) { lengths.push(data.length) } })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  client.socket.send('x'.repeat(100))
  client.socket.send('x'.repeat(101))
  assert.equal((await client.closed).code, 1009)
  assert.deepEqual(lengths, [100])
})

test('messages still queued when the server closes a client are not handled; onClose still runs once', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  const handled: string[] = []
  let closes = 0
  app.hub.route({
    url: '/ws',
    async onMessage (client, data) {
      handled.push(String(data))
      if (data === 'first') {
        await sleep(50)
        client.close(4000, 'server decided')
      }
    },
    onClose () { closes++ }
  })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  client.socket.send('first')
  client.socket.send('second')
  client.socket.send('third')
  assert.deepEqual(await client.closed, { code: 4000, reason: 'server decided' })
  await waitFor(() => closes === 1)
  // A window for a late handler or a second onClose to show up; a slower machine only makes it wider.
  await sleep(30)
  assert.deepEqual(handled, ['first'])
  assert.equal(closes, 1)
})
