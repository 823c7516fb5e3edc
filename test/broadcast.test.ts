import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import fastifyWsHub, { MemoryBus, memoryAdapter, type Client } from '../dist/index.js'
import { connect, createApp, listen, waitFor, within, type TestClient } from './helpers.js'

async function roomApp (t: Parameters<typeof createApp>[0]) {
  const app = await createApp(t, { handshakeMessage: false })
  const byName = new Map<string, Client>()
  app.hub.route({
    url: '/ws',
    onUpgrade (request) {
      const query = request.query as { name: string, rooms?: string }
      return { name: query.name, rooms: query.rooms ?? '' }
    },
    onOpen (client) {
      for (const room of client.params.rooms.split(',').filter(Boolean)) client.join(room)
      byName.set(client.params.name, client as unknown as Client)
    }
  })
  const url = await listen(app)
  const clients = new Map<string, TestClient>()
  async function join (name: string, rooms = ''): Promise<TestClient> {
    const client = await connect(`${url}/ws?name=${name}&rooms=${rooms}`)
    clients.set(name, client)
    await waitFor(() => byName.has(name))
    return client
  }
  return { app, byName, clients, join }
}

test('broadcast reaches every open client, framed once, and returns the count', async (t) => {
  const { app, join } = await roomApp(t)
  const a = await join('a')
  const b = await join('b')
  assert.equal(app.hub.broadcast('hello'), 2)
  assert.equal(app.hub.broadcast({ json: true }), 2)
  assert.equal(app.hub.broadcast(Buffer.from([0xca, 0xfe])), 2)
  assert.equal(app.hub.broadcast(new Uint8Array([1, 2]).buffer), 2)
  assert.equal(app.hub.broadcast(new Uint16Array([1])), 2)
  const expected = ['hello', '{"json":true}', 'binary:cafe', 'binary:0102', 'binary:0100']
  assert.deepEqual(await a.received(5), expected)
  assert.deepEqual(await b.received(5), expected)
  assert.equal(app.hub.stats().messagesOut, 10)
})

test('broadcast to a room, to several rooms (each member once) and with except', async (t) => {
  const { app, byName, join } = await roomApp(t)
  const a = await join('a', 'red')
  const b = await join('b', 'red,blue')
  const c = await join('c', 'blue')
  const d = await join('d')
  assert.equal(app.hub.roomSize('red'), 2)
  assert.equal(app.hub.roomSize('nowhere'), 0)
  assert.equal(app.hub.broadcast('to red', { room: 'red' }), 2)
  assert.equal(app.hub.broadcast('to both', { room: ['red', 'blue', 'missing'] }), 3)
  assert.equal(app.hub.broadcast('to none', { room: [] }), 0)
  assert.equal(app.hub.broadcast('to none', { room: 'missing' }), 0)
  assert.equal(app.hub.broadcast('not b', { except: byName.get('b') }), 3)
  assert.equal(app.hub.broadcast('blue not c', { room: 'blue', except: byName.get('c')?.id }), 1)
  assert.deepEqual(await a.received(3), ['to red', 'to both', 'not b'])
  assert.deepEqual(await b.received(3), ['to red', 'to both', 'blue not c'])
  assert.deepEqual(await c.received(2), ['to both', 'not b'])
  assert.deepEqual(await d.received(1), ['not b'])
  await waitFor(() => a.messages.length + b.messages.length + c.messages.length + d.messages.length === 9)
})

test('leave() and closing take a client out of its rooms', async (t) => {
  const { app, byName, clients, join } = await roomApp(t)
  await join('a', 'red,blue')
  await join('b', 'red')
  const a = byName.get('a') as Client
  assert.deepEqual([...a.rooms].sort(), ['blue', 'red'])
  a.leave('red')
  a.leave('never-joined')
  assert.deepEqual([...a.rooms], ['blue'])
  assert.equal(app.hub.roomSize('red'), 1)
  assert.equal(app.hub.stats().rooms, 2)
  clients.get('b')?.socket.close()
  await waitFor(() => app.hub.roomSize('red') === 0)
  assert.equal(app.hub.stats().rooms, 1)
  assert.throws(() => a.join(42 as unknown as string), TypeError)
})

test('frames reach each client in call order when broadcasts, room broadcasts and send interleave', async (t) => {
  const { app, byName, join } = await roomApp(t)
  const a = await join('a', 'red')
  const b = await join('b')
  const serverA = byName.get('a') as Client
  const expectedA: string[] = []
  const expectedB: string[] = []
  for (let turn = 0; turn < 50; turn++) {
    app.hub.broadcast(`all ${turn}`)
    expectedA.push(`all ${turn}`)
    expectedB.push(`all ${turn}`)
    app.hub.broadcast(`red ${turn}`, { room: 'red' })
    expectedA.push(`red ${turn}`)
    serverA.send(`direct ${turn}`)
    expectedA.push(`direct ${turn}`)
    app.hub.sendTo(serverA.id, `sendTo ${turn}`)
    expectedA.push(`sendTo ${turn}`)
    if (turn % 10 === 9) await new Promise(resolve => setImmediate(resolve))
  }
  assert.deepEqual(await a.received(expectedA.length, 5000), expectedA)
  assert.deepEqual(await b.received(expectedB.length, 5000), expectedB)
})

test('nothing is written to a client that is closing', async (t) => {
  const { app, byName, join } = await roomApp(t)
  const a = await join('a', 'red')
  const serverA = byName.get('a') as Client
  serverA.close(4000, 'bye')
  assert.equal(app.hub.broadcast('after close'), 0)
  assert.equal(app.hub.broadcast('after close', { room: 'red' }), 0)
  assert.equal(app.hub.sendTo(serverA.id, 'after close'), false)
  assert.equal(serverA.send('after close'), false)
  assert.deepEqual(await a.closed, { code: 4000, reason: 'bye' })
  assert.deepEqual(a.messages, [])
  assert.equal(app.hub.stats().messagesOut, 0)
})

test('send and broadcast reject values that have no JSON form with a clear error', async (t) => {
  const { app, byName, join } = await roomApp(t)
  await join('a')
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  for (const value of [undefined, () => 1, Symbol('s'), 10n, cyclic]) {
    assert.throws(() => app.hub.broadcast(value as never), { code: 'FST_WS_HUB_UNSERIALIZABLE' })
    assert.throws(() => byName.get('a')?.send(value as never), { code: 'FST_WS_HUB_UNSERIALIZABLE' })
  }
})

test('sendTo an unknown id on a lone hub returns false; counts and stats', async (t) => {
  const { app, join } = await roomApp(t)
  await join('a', 'red')
  assert.equal(app.hub.sendTo('no-such-client', 'x'), false)
  assert.equal(app.hub.onlineCount(), 1)
  assert.equal(await app.hub.clusterCount(), 1)
  assert.equal(await app.hub.clusterRoomSize('red'), 1)
  assert.equal(typeof app.hub.nodeId, 'string')
  const stats = app.hub.stats()
  assert.equal(stats.clients, 1)
  assert.equal(stats.rooms, 1)
})

test('large messages (over 16 KiB, 64 KiB) are framed correctly', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  app.hub.route({ url: '/ws' })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  await waitFor(() => app.hub.onlineCount() === 1)
  const medium = 'm'.repeat(20_000)
  const large = 'L'.repeat(70_000)
  app.hub.broadcast(medium)
  app.hub.broadcast(large)
  assert.deepEqual(await client.received(2), [medium, large])
})

test('clients with permessage-deflate get the same messages through ws framing', async (t) => {
  const app = await createApp(t, { handshakeMessage: 'compressed hello', heartbeat: { interval: 200 }, websocket: { options: { perMessageDeflate: true } } })
  let server: Client | undefined
  app.hub.route({ url: '/ws', onOpen (client) { server = client as Client } })
  const url = await listen(app)
  const client = await connect(`${url}/ws`, { perMessageDeflate: true })
  await waitFor(() => server !== undefined)
  assert.match(client.socket.extensions, /permessage-deflate/)
  app.hub.broadcast('x'.repeat(5000))
  server?.send({ after: 'broadcast' })
  assert.deepEqual(await client.received(3), ['compressed hello', 'x'.repeat(5000), '{"after":"broadcast"}'])
  // Pings through ws's framing reach it too (an interval a loaded machine keeps, pongs read late or not).
  await within(new Promise(resolve => client.socket.once('ping', resolve)), 5000, 'a ping')
})

test('hubs on one memory bus act as a cluster: broadcast, rooms, except, sendTo and counts', async (t) => {
  const bus = new MemoryBus()
  const nodes = []
  for (let index = 0; index < 2; index++) {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(fastifyWsHub, { heartbeat: false, handshakeMessage: false, adapter: memoryAdapter({ bus }) })
    const opened: Client[] = []
    app.hub.route({ url: '/ws', onOpen (client) { client.join('room'); opened.push(client as Client) } })
    nodes.push({ app, url: await listen(app), opened })
  }
  const [one, two] = nodes as [typeof nodes[0], typeof nodes[0]]
  const onOne = await connect(`${one.url}/ws`)
  const onTwo = await connect(`${two.url}/ws`)
  await waitFor(() => one.opened.length === 1 && two.opened.length === 1)
  assert.equal(await one.app.hub.clusterCount(), 2)
  assert.equal(await two.app.hub.clusterRoomSize('room'), 2)
  one.app.hub.broadcast('everyone')
  one.app.hub.broadcast('room', { room: 'room' })
  one.app.hub.broadcast('not two', { except: two.opened[0]?.id })
  assert.equal(one.app.hub.sendTo(two.opened[0]?.id as string, 'direct'), true)
  assert.deepEqual(await onTwo.received(3), ['everyone', 'room', 'direct'])
  assert.deepEqual(await onOne.received(3), ['everyone', 'room', 'not two'])
  assert.equal(one.app.hub.stats()['adapter.published'], 4)
})
