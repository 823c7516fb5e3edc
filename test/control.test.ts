import assert from 'node:assert/strict'
import { test } from 'node:test'
import { MemoryBus, memoryAdapter, type HubAdapter, type HubNode } from '../dist/index.js'
import { controlNode, idOf, type ControlParams } from './control-env.js'
import { connect, createApp, listen, waitFor } from './helpers.js'
import { disconnectAcrossNodes, fetchAcrossNodes, joinAndLeaveAcrossNodes, nodeMessagesAcrossNodes, userClient } from './control-scenarios.js'

/** Adapters of one in-process cluster. */
function onOneBus (): () => HubAdapter {
  const bus = new MemoryBus()
  return () => memoryAdapter({ bus })
}

test('fetchClients lists the clients of both nodes, or of a room (MemoryBus)', async (t) => {
  await fetchAcrossNodes(t, onOneBus())
})

test('join and leave act on a client or a room\'s members on both nodes (MemoryBus)', async (t) => {
  await joinAndLeaveAcrossNodes(t, onOneBus())
})

test('disconnect closes a client or a room\'s members on both nodes, with code and reason (MemoryBus)', async (t) => {
  await disconnectAcrossNodes(t, onOneBus())
})

test('emitToNodes reaches the other nodes\' onNodeMessage handlers, not its own (MemoryBus)', async (t) => {
  await nodeMessagesAcrossNodes(t, onOneBus())
})

test('one process: every operation acts here, and emitToNodes has nobody to reach', async (t) => {
  const node = await controlNode(t)
  const ann = await userClient(node, 'ann', 'red')
  await userClient(node, 'bob')
  const hub = node.app.hub
  assert.deepEqual((await hub.fetchClients<ControlParams>()).map(info => info.params.user).sort(), ['ann', 'bob'])
  assert.equal(await hub.join(idOf(node, 'bob'), 'red'), 1)
  assert.equal((await hub.fetchClients({ room: 'red' })).length, 2)
  assert.equal(await hub.leave({ room: 'red' }, 'red'), 2)
  assert.equal(hub.roomSize('red'), 0)
  assert.equal(await hub.disconnect(idOf(node, 'ann'), 3000, 'done'), 1)
  assert.deepEqual(await ann.closed, { code: 3000, reason: 'done' })
  assert.equal(hub.emitToNodes('anything', 1), false)
})

test('params with no JSON form are listed as {}', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  app.hub.route({ url: '/big', onUpgrade: () => ({ big: 1n }) })
  const client = await connect(`${await listen(app)}/big`)
  t.after(() => client.socket.close())
  await waitFor(() => app.hub.onlineCount() === 1, 2000, 'the client to open')
  const [info] = await app.hub.fetchClients()
  assert.deepEqual(info?.params, {})
  assert.equal(info?.route, '/big')
})

test('bad arguments are refused before anything is sent: target, room, close code, reason, type, handler, data', async (t) => {
  const { app } = await controlNode(t)
  const hub = app.hub as unknown as Record<string, (...args: unknown[]) => unknown>
  const invalid = (name: string) => (error: Error & { code?: string }) => {
    assert.equal(error.code, 'FST_WS_HUB_INVALID_ARGUMENT')
    assert.ok(error.message.includes(`"${name}"`), error.message)
    return true
  }
  await assert.rejects(async () => await hub.join?.(42, 'red'), invalid('target'))
  await assert.rejects(async () => await hub.join?.({ rooms: 'red' }, 'red'), invalid('target'))
  await assert.rejects(async () => await hub.leave?.('', 'red'), invalid('target'))
  await assert.rejects(async () => await hub.join?.('someone', 7), invalid('room'))
  await assert.rejects(async () => await hub.fetchClients?.({ room: 7 }), invalid('room'))
  await assert.rejects(async () => await hub.disconnect?.('someone', 1006), invalid('code'))
  await assert.rejects(async () => await hub.disconnect?.('someone', 2999), invalid('code'))
  await assert.rejects(async () => await hub.disconnect?.('someone', 4000.5), invalid('code'))
  await assert.rejects(async () => await hub.disconnect?.('someone', 4000, 'x'.repeat(124)), invalid('reason'))
  assert.throws(() => hub.emitToNodes?.(''), invalid('type'))
  assert.throws(() => hub.onNodeMessage?.('t', 'not a function'), invalid('handler'))
  assert.throws(() => hub.onNodeMessage?.(3, () => {}), invalid('type'))
  assert.throws(() => hub.emitToNodes?.('t', { n: 1n }), (error: Error & { code?: string }) => error.code === 'FST_WS_HUB_UNSERIALIZABLE')
})

test('a node that does not answer: fetchClients rejects after controlTimeout with what the others gave (MemoryBus)', async (t) => {
  const bus = new MemoryBus()
  const a = await controlNode(t, { adapter: memoryAdapter({ bus }), controlTimeout: 200 })
  const b = await controlNode(t, { adapter: memoryAdapter({ bus }) })
  await userClient(a, 'ann')
  await userClient(b, 'cid')
  // A third node in the bus whose answers never come: a hub that hangs in the middle of a handler.
  const nodes = (bus as unknown as { nodes: Set<HubNode> }).nodes
  const hanging: HubNode = { ...[...nodes][1] as HubNode, nodeId: 'hanging', handleNodeMessage: () => new Promise(() => {}) }
  nodes.add(hanging)
  t.after(() => nodes.delete(hanging))
  const started = Date.now()
  await assert.rejects(a.app.hub.fetchClients(), (error: Error & { code?: string, missing?: number, answered?: string[], partial?: Array<{ params: unknown }> }) => {
    assert.equal(error.code, 'FST_WS_HUB_NODES_TIMEOUT')
    assert.match(error.message, /1 node\(s\) did not answer within 200 ms/)
    assert.equal(error.missing, 1)
    assert.deepEqual(error.answered, [a.app.hub.nodeId, b.app.hub.nodeId])
    assert.deepEqual(error.partial?.map(info => info.params), [{ user: 'ann' }, { user: 'cid' }])
    return true
  })
  assert.ok(Date.now() - started >= 190, 'it waited for the timeout')
  // A shorter timeout of its own.
  await assert.rejects(a.app.hub.fetchClients({ timeout: 20 }), /did not answer within 20 ms/)
})

test('controlTimeout is checked as an option', async (t) => {
  await assert.rejects(controlNode(t, { controlTimeout: -1 }), /"controlTimeout"/)
  await assert.rejects(controlNode(t, { controlTimeout: 'soon' as unknown as number }), /"controlTimeout"/)
})
