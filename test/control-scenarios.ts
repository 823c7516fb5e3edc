import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import type { HubAdapter } from '../dist/index.js'
import { controlNode, idOf, type ControlNode } from './control-env.js'
import { connect, waitFor, type TestClient } from './helpers.js'

/** Two nodes of one cluster (made by `makeAdapter`), with clients: ann and bob on A, cid and dee on B. */
export interface TwoNodes {
  a: ControlNode
  b: ControlNode
  clients: Record<'ann' | 'bob' | 'cid' | 'dee', TestClient>
}

/** Opens a client of a user, in a room when given, and waits for its `ready`. */
export async function userClient (node: ControlNode, user: string, room?: string): Promise<TestClient> {
  const client = await connect(`${node.url}?user=${user}${room === undefined ? '' : `&room=${room}`}`)
  await client.received(1)
  return client
}

/** Two nodes; ann (room red) and bob on A, cid (room red) and dee (room blue) on B. */
export async function twoNodes (t: TestContext, makeAdapter: () => HubAdapter, controlTimeout?: number): Promise<TwoNodes> {
  const a = await controlNode(t, { adapter: makeAdapter(), controlTimeout })
  const b = await controlNode(t, { adapter: makeAdapter(), controlTimeout })
  const clients = {
    ann: await userClient(a, 'ann', 'red'),
    bob: await userClient(a, 'bob'),
    cid: await userClient(b, 'cid', 'red'),
    dee: await userClient(b, 'dee', 'blue')
  }
  return { a, b, clients }
}

/** The users of a list of client descriptions, sorted. */
function usersOf (infos: ReadonlyArray<{ params: unknown }>): string[] {
  return infos.map(info => (info.params as { user: string }).user).sort()
}

/** `fetchClients` from either node lists every client once, with its node, route, rooms, params and connection time. */
export async function fetchAcrossNodes (t: TestContext, makeAdapter: () => HubAdapter): Promise<void> {
  const before = Date.now()
  const { a, b } = await twoNodes(t, makeAdapter)
  const all = await a.app.hub.fetchClients()
  assert.deepEqual(usersOf(all), ['ann', 'bob', 'cid', 'dee'])
  const cid = all.find(info => info.id === idOf(b, 'cid'))
  assert.ok(cid !== undefined)
  assert.equal(cid.nodeId, b.app.hub.nodeId)
  assert.equal(cid.route, '/ws')
  assert.deepEqual(cid.rooms, ['red'])
  assert.deepEqual(cid.params, { user: 'cid' })
  assert.ok(cid.connectedAt >= before && cid.connectedAt <= Date.now(), 'connectedAt is when it connected')
  assert.deepEqual(usersOf(await b.app.hub.fetchClients()), ['ann', 'bob', 'cid', 'dee'])
  assert.deepEqual(usersOf(await b.app.hub.fetchClients({ room: 'red' })), ['ann', 'cid'])
  assert.deepEqual(usersOf(await a.app.hub.fetchClients({ room: 'blue' })), ['dee'])
  assert.deepEqual(await a.app.hub.fetchClients({ room: 'nobody-here' }), [])
}

/** `join` and `leave` with an id or a room as target act on the clients of both nodes; broadcasts then follow. */
export async function joinAndLeaveAcrossNodes (t: TestContext, makeAdapter: () => HubAdapter): Promise<void> {
  const { a, b, clients } = await twoNodes(t, makeAdapter)
  // dee is on B: A tells it to join green, and once that resolves B receives green's broadcasts.
  assert.equal(await a.app.hub.join(idOf(b, 'dee'), 'green'), 1)
  assert.deepEqual([...b.app.hub.clients.get(idOf(b, 'dee'))?.rooms ?? []].sort(), ['blue', 'green'])
  a.app.hub.broadcast('to green', { room: 'green' })
  await clients.dee.received(2, 5000)
  assert.equal(clients.dee.messages[1], 'to green')

  // Every member of red (ann on A, cid on B) joins yellow.
  assert.equal(await b.app.hub.join({ room: 'red' }, 'yellow'), 2)
  b.app.hub.broadcast('to yellow', { room: 'yellow' })
  await clients.ann.received(2, 5000)
  await clients.cid.received(2, 5000)
  assert.deepEqual([clients.ann.messages[1], clients.cid.messages[1]], ['to yellow', 'to yellow'])

  // Leave: an id on the other node, then a whole room.
  assert.equal(await b.app.hub.leave(idOf(a, 'ann'), 'yellow'), 1)
  assert.deepEqual(usersOf(await a.app.hub.fetchClients({ room: 'yellow' })), ['cid'])
  assert.equal(await a.app.hub.leave({ room: 'red' }, 'red'), 2)
  assert.deepEqual(await b.app.hub.fetchClients({ room: 'red' }), [])
  // A target that is nowhere acts on nobody.
  assert.equal(await a.app.hub.join('no-such-client', 'green'), 0)
  assert.equal(await a.app.hub.leave({ room: 'no-such-room' }, 'green'), 0)
  assert.equal(clients.bob.messages.length, 1, 'bob was in none of it')
}

/** `disconnect` closes the targets with the code and reason, on both nodes, after what was broadcast before it. */
export async function disconnectAcrossNodes (t: TestContext, makeAdapter: () => HubAdapter): Promise<void> {
  const { a, b, clients } = await twoNodes(t, makeAdapter)
  const deeId = idOf(b, 'dee')
  assert.equal(await a.app.hub.disconnect(deeId, 4001, 'kicked'), 1)
  assert.deepEqual(await clients.dee.closed, { code: 4001, reason: 'kicked' })
  await waitFor(() => b.closes.has(deeId), 2000, 'dee\'s onClose on B')
  assert.deepEqual(b.closes.get(deeId), { code: 4001, reason: 'kicked' })

  // A broadcast to red, then red disconnected: each member gets the broadcast, then the close.
  a.app.hub.broadcast('last words', { room: 'red' })
  assert.equal(await a.app.hub.disconnect({ room: 'red' }), 2)
  for (const client of [clients.ann, clients.cid]) {
    assert.deepEqual(await client.closed, { code: 1000, reason: '' })
    assert.deepEqual(client.messages, ['ready', 'last words'])
  }
  assert.equal(clients.bob.socket.readyState, clients.bob.socket.OPEN, 'bob, in no room, is still connected')
  assert.equal(await b.app.hub.disconnect('no-such-client'), 0)
}

/** `emitToNodes` reaches the other node's handlers of its type (as JSON), not its own; a failing handler does not stop the others. */
export async function nodeMessagesAcrossNodes (t: TestContext, makeAdapter: () => HubAdapter): Promise<void> {
  const { a, b } = await twoNodes(t, makeAdapter)
  const onA: unknown[] = []
  const onB: Array<{ data: unknown, from: string }> = []
  a.app.hub.onNodeMessage('reload', (data) => { onA.push(data) })
  b.app.hub.onNodeMessage('reload', () => { throw new Error('this handler fails') })
  b.app.hub.onNodeMessage('reload', async () => { throw new Error('this handler rejects') })
  const stop = b.app.hub.onNodeMessage<{ at: Date | string, n: number }>('reload', (data, from) => { onB.push({ data, from }) })
  b.app.hub.onNodeMessage('other', () => { onB.push({ data: 'wrong type', from: '' }) })
  const at = new Date(0)
  assert.equal(a.app.hub.emitToNodes('reload', { at, n: 1 }), true)
  a.app.hub.emitToNodes('reload', { at, n: 2 })
  await waitFor(() => onB.length === 2, 5000, 'both messages on B')
  assert.deepEqual(onB, [
    { data: { at: at.toISOString(), n: 1 }, from: a.app.hub.nodeId },
    { data: { at: at.toISOString(), n: 2 }, from: a.app.hub.nodeId }
  ])
  assert.deepEqual(onA, [], 'a node does not hear its own messages')
  await waitFor(() => b.app.hub.stats().handlerErrors === 4, 2000, 'the two failing handlers counted twice each')
  stop()
  a.app.hub.emitToNodes('reload', { n: 3 })
  a.app.hub.emitToNodes('other')
  await waitFor(() => onB.length === 3, 5000, 'the message of the other type')
  assert.deepEqual(onB[2], { data: 'wrong type', from: '' }, 'the removed handler got nothing more')
}
