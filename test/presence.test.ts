import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import fastifyWsHub, { MemoryBus, memoryAdapter, NotPresenceRoomError, type HubAdapter, type HubNode } from '../dist/index.js'
import WebSocket from 'ws'
import { createClient, type PresenceEvent, type WebSocketConstructor } from '../dist/client/index.js'
import { connect, createApp, listen, waitFor, waitForAsync } from './helpers.js'
import { enter, idsOf, PRESENCE, startPresenceNode } from './presence-env.js'

test('hub.presence lists the members of a presence room with the chosen params only', async (t) => {
  const node = await startPresenceNode(t)
  const alice = await enter(node, 'alice', ['p:lobby', 'plain'])
  const bob = await enter(node, 'bob', ['p:lobby'])
  await enter(node, 'carol', ['p:other'])
  await waitForAsync(async () => (await node.app.hub.presence('p:lobby')).length === 2, 2000, 'two members')
  const members = (await node.app.hub.presence('p:lobby')).sort((a, b) => a.id < b.id ? -1 : 1)
  const expected = [alice, bob].sort((a, b) => a.id < b.id ? -1 : 1)
  assert.deepEqual(members.map(member => member.id), expected.map(client => client.id))
  for (const member of members) {
    assert.equal(member.nodeId, node.app.hub.nodeId)
    assert.deepEqual(member.params, { userId: member.id === alice.id ? 'alice' : 'bob' })
    assert.ok(Math.abs(Date.now() - member.since) < 5000)
  }
  assert.deepEqual((await node.app.hub.presence('p:other')).map(member => member.params), [{ userId: 'carol' }])
  assert.deepEqual(await node.app.hub.presence('p:empty'), [])
})

test('a room without presence, or a hub without the option, rejects with NotPresenceRoomError', async (t) => {
  const node = await startPresenceNode(t)
  await assert.rejects(node.app.hub.presence('plain'), (error: Error) => {
    assert.ok(error instanceof NotPresenceRoomError)
    assert.equal((error as Error & { code: string }).code, 'FST_WS_HUB_NOT_PRESENCE_ROOM')
    assert.match(error.message, /Room "plain" has no presence: presence.rooms does not include it/)
    return true
  })
  const off = await createApp(t)
  await off.ready()
  await assert.rejects(off.hub.presence('p:x'), /Room "p:x" has no presence: the hub has no presence option/)
})

test('members get $join and $leave of the others on every node, never their own', async (t) => {
  const bus = new MemoryBus()
  const a = await startPresenceNode(t, memoryAdapter({ bus }))
  const b = await startPresenceNode(t, memoryAdapter({ bus }))
  const first = await enter(a, 'first', ['p:room'])
  const second = await enter(b, 'second', ['p:room'])
  await waitFor(() => idsOf(first, '$join').length === 1, 2000, 'first hears second join')
  assert.deepEqual(first.events()[0], { type: '$join', data: { room: 'p:room', id: second.id, params: { userId: 'second' } } })
  const third = await enter(a, 'third', ['p:room', 'plain'])
  await waitFor(() => idsOf(first, '$join').length === 2 && idsOf(second, '$join').length === 1, 2000, 'both hear third join')
  // Members of the room on both nodes; each has its own presence in the shared bus.
  assert.equal((await b.app.hub.presence('p:room')).length, 3)
  third.socket.close()
  await waitFor(() => idsOf(first, '$leave').length === 1 && idsOf(second, '$leave').length === 1, 2000, 'both hear third leave')
  assert.deepEqual(second.events().at(-1), { type: '$leave', data: { room: 'p:room', id: third.id, params: { userId: 'third' } } })
  second.socket.send('leave:p:room')
  await waitFor(() => idsOf(first, '$leave').length === 2, 2000, 'first hears second leave')
  assert.deepEqual(idsOf(first, '$join'), [second.id, third.id])
  assert.deepEqual(idsOf(first, '$leave'), [third.id, second.id])
  // Nobody heard of itself, and a plain room has no events.
  assert.deepEqual(idsOf(second, '$join'), [third.id])
  assert.equal(third.events().length, 0)
  assert.deepEqual((await a.app.hub.presence('p:room')).map(member => member.id), [first.id])
  // Joining twice is one membership: no second event.
  second.socket.send('join:p:room')
  second.socket.send('join:p:room')
  await waitFor(() => idsOf(first, '$join').length === 3, 2000, 'first hears second again')
  await new Promise(resolve => setTimeout(resolve, 50))
  assert.equal(idsOf(first, '$join').length, 3)
})

test('a rooms function that throws is logged and the room is taken as without presence', async (t) => {
  const logged: string[] = []
  const stream = { write: (line: string) => { logged.push(line) } }
  const app = await createApp(t, {
    handshakeMessage: false,
    presence: { rooms: (room) => { if (room === 'boom') throw new Error('bad rooms'); return true } }
  }, { logger: { level: 'warn', stream } })
  app.hub.route({ url: '/ws', onOpen: async (client) => { await client.join('boom'); client.send('in') } })
  const client = await connect(`${await listen(app)}/ws`)
  await client.received(1)
  await assert.rejects(app.hub.presence('boom'), NotPresenceRoomError)
  assert.ok(logged.some(line => line.includes('presence.rooms threw')), 'a warning is logged')
})

test('a member whose params JSON cannot carry is entered without them', async (t) => {
  const app = await createApp(t, { handshakeMessage: false, presence: { rooms: () => true, params: ['big', 'fn', 'ok', 'missing'] } })
  app.hub.route({
    url: '/ws',
    onUpgrade: () => ({ big: 10n, fn: () => 1, ok: { nested: [1] } }),
    onOpen: async (client) => { await client.join('r'); client.send('in') }
  })
  const client = await connect(`${await listen(app)}/ws`)
  await client.received(1)
  await waitForAsync(async () => (await app.hub.presence('r')).length === 1)
  assert.deepEqual((await app.hub.presence('r'))[0]?.params, { ok: { nested: [1] } })
})

test('the presence option is checked at registration', async () => {
  const cases: Array<[unknown, RegExp]> = [
    [true, /"presence": expected \{ rooms, params\? \}, got true/],
    [{}, /"presence.rooms": expected a function/],
    [{ rooms: 'p:*' }, /"presence.rooms": expected a function/],
    [{ rooms: () => true, params: 'userId' }, /"presence.params": expected an array/],
    [{ rooms: () => true, params: [''] }, /"presence.params": expected an array/],
    [{ rooms: () => true, room: () => true }, /presence/]
  ]
  for (const [presence, message] of cases) {
    const app = Fastify()
    app.register(fastifyWsHub, { presence } as never)
    await assert.rejects(async () => { await app.ready() }, message)
  }
  const bare = memoryAdapter() as HubAdapter & { presence?: unknown }
  const { presence: _dropped, ...withoutStore } = bare
  const app = Fastify()
  app.register(fastifyWsHub, { presence: PRESENCE, adapter: withoutStore as HubAdapter })
  await assert.rejects(async () => { await app.ready() }, /the adapter keeps no presence/)
})

test('a presence store that rejects (a custom adapter) is logged, not thrown into the hub', async (t) => {
  const adapter = memoryAdapter()
  const failing: HubAdapter = {
    ...adapter,
    start: node => adapter.start(node),
    publish: envelope => adapter.publish(envelope),
    clusterCount: () => adapter.clusterCount(),
    clusterRoomSize: room => adapter.clusterRoomSize(room),
    close: () => adapter.close(),
    presence: {
      enter: async () => { throw new Error('enter failed') },
      exit: async () => { throw new Error('exit failed') },
      members: async () => []
    }
  }
  const node = await startPresenceNode(t, failing)
  const client = await enter(node, 'x', ['p:r'])
  client.socket.close()
  await client.closed
  assert.deepEqual(await node.app.hub.presence('p:r'), [])
})

test('the client library hands $join and $leave to their listeners, as { room, id, params }', async (t) => {
  const node = await startPresenceNode(t)
  const client = createClient(`${node.url}/ws?user=lib&rooms=p:c`, { WebSocket: WebSocket as unknown as WebSocketConstructor, handshake: false })
  t.after(() => client.close())
  const heard: Array<[string, PresenceEvent]> = []
  client.on('$join', event => heard.push(['$join', event]))
  client.on('$leave', event => heard.push(['$leave', event]))
  await waitForAsync(async () => (await node.app.hub.presence('p:c')).length === 1, 2000, 'the library client in the room')
  const other = await enter(node, 'other', ['p:c'])
  other.socket.close()
  await waitFor(() => heard.length === 2, 2000, 'a join and a leave')
  assert.deepEqual(heard, [
    ['$join', { room: 'p:c', id: other.id, params: { userId: 'other' } }],
    ['$leave', { room: 'p:c', id: other.id, params: { userId: 'other' } }]
  ])
})

test('memory bus: an exit removes only the entry of its own hub (a client that resumed on another hub of the bus stays)', async () => {
  const bus = new MemoryBus()
  const [a, b] = [memoryAdapter({ bus }), memoryAdapter({ bus })]
  const node = (nodeId: string): HubNode => ({ nodeId } as unknown as HubNode)
  await a.start(node('a'))
  await b.start(node('b'))
  await a.presence?.enter('p:r', { id: 'x', nodeId: 'a', params: {}, since: 1 })
  await b.presence?.enter('p:r', { id: 'x', nodeId: 'b', params: {}, since: 2 })
  assert.equal(await a.presence?.exit('p:r', 'x'), false)
  assert.deepEqual((await a.presence?.members('p:r'))?.map(member => member.nodeId), ['b'])
  assert.equal(await b.presence?.exit('p:r', 'x'), true)
  assert.deepEqual(await b.presence?.members('p:r'), [])
  assert.equal(await b.presence?.exit('p:r', 'x'), false)
})
