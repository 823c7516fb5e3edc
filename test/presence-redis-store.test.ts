// The Redis adapter's PresenceStore on its own, with fake hubs: whose entry an exit removes, what
// members() drops, the reapers' race for a dead node's entries, and Redis lost and back.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import type { FastifyBaseLogger } from 'fastify'
import type { HubNode } from '../dist/adapters/adapter.js'
import type { PresenceMember } from '../dist/index.js'
import { redisAdapter, RedisUnavailableError, type RedisAdapterOptions } from '../dist/adapters/redis/index.js'
import { eventually, freePort, rawClient, uniquePrefix, useRedis, useRedisServer } from './redis-env.js'

/** A hub as far as the adapter sees it, that keeps the lapses it is told. */
interface FakeNode extends HubNode {
  readonly lapsed: Array<{ room: string, members: readonly PresenceMember[] }>
}

const silent = { fatal () {}, error () {}, warn () {}, info () {}, debug () {}, trace () {}, child: () => silent, level: 'silent' } as unknown as FastifyBaseLogger

function fakeNode (): FakeNode {
  const lapsed: FakeNode['lapsed'] = []
  return {
    nodeId: randomUUID(),
    lapsed,
    deliver () {},
    holds: () => false,
    handleNodeMessage: () => null,
    onlineCount: () => 0,
    roomSize: () => 0,
    rooms: new Map(),
    membershipVersion: 0,
    log: silent,
    release () {},
    presenceLapsed (room, members) { lapsed.push({ room, members }) }
  }
}

type Adapter = ReturnType<typeof redisAdapter>
/** The store's own methods, beyond the contract, that the adapter's tick and timers call. */
interface Reaper { reap (): Promise<void> }

async function started (t: TestContext, options: RedisAdapterOptions, node: HubNode): Promise<Adapter> {
  const adapter = redisAdapter(options)
  await adapter.start(node)
  t.after(() => adapter.close())
  return adapter
}

function member (node: HubNode, id: string, userId = id): PresenceMember {
  return { id, nodeId: node.nodeId, params: { userId }, since: Date.now() }
}

test('an exit removes only the entry of its own node: a client entered since by another node stays', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const oldNode = fakeNode()
  const newNode = fakeNode()
  const a = await started(t, { url, prefix }, oldNode)
  const b = await started(t, { url, prefix }, newNode)
  await a.presence.enter('p:r', member(oldNode, 'x'))
  await b.presence.enter('p:r', member(newNode, 'x'))
  assert.equal(await a.presence.exit('p:r', 'x'), false, 'not ours any more')
  assert.deepEqual((await a.presence.members('p:r')).map(entry => [entry.id, entry.nodeId]), [['x', newNode.nodeId]])
  assert.equal(await a.presence.exit('p:r', 'never-entered'), false)
  assert.equal(await b.presence.exit('p:r', 'x'), true)
  assert.deepEqual(await b.presence.members('p:r'), [])
})

test('members() drops the entries of nodes whose lease is gone, and skips entries that are not ours', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const node = fakeNode()
  const adapter = await started(t, { url, prefix }, node)
  await adapter.presence.enter('p:r', member(node, 'live'))
  const redis = rawClient(t, url)
  const key = `${prefix}:db0:presence:{p:r}`
  await redis.hset(key, 'ghost', JSON.stringify({ nodeId: 'dead-node', id: 'ghost', params: {}, since: 1 }), 'junk', 'not json', 'odd', '{"x":1}')
  const members = await adapter.presence.members('p:r')
  assert.deepEqual(members.map(entry => entry.id), ['live'])
  assert.deepEqual(members[0]?.params, { userId: 'live' })
})

test('two reapers at once: each entry of a dead node is removed once, and its leave told by one of them only', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const deadId = randomUUID()
  const redis = rawClient(t, url)
  // A dead node's traces, as it left them: its entries in three rooms and its sets, no lease.
  const rooms = ['p:a', 'p:b', 'p:c']
  for (const room of rooms) {
    const fields: string[] = []
    for (let i = 0; i < 50; i++) fields.push(`${room}-${i}`, JSON.stringify({ nodeId: deadId, id: `${room}-${i}`, params: { userId: i }, since: 1 }))
    await redis.hset(`${prefix}:db0:presence:{${room}}`, ...fields)
  }
  await redis.sadd(`${prefix}:presence:node:${deadId}`, ...rooms)
  await redis.sadd(`${prefix}:presence:nodes`, deadId)
  const nodes = [fakeNode(), fakeNode()]
  const adapters = await Promise.all(nodes.map(node => started(t, { url, prefix }, node)))
  // A live entry in a reaped room must survive.
  await adapters[0]?.presence.enter('p:a', member(nodes[0] as HubNode, 'alive'))
  const reapers = adapters.map(adapter => adapter.presence as unknown as Reaper)
  await Promise.all([...reapers, ...reapers].map(reaper => reaper.reap()))
  await eventually(async () => await redis.exists(`${prefix}:presence:node:${deadId}`) === 0, 3000, 'the dead node\'s set to go')
  const told = nodes.flatMap(node => node.lapsed.flatMap(({ room, members }) => members.map(entry => `${room}/${entry.id}`)))
  assert.equal(told.length, 150, `${told.length} leaves told for 150 entries`)
  assert.equal(new Set(told).size, 150, 'none twice')
  t.diagnostic(`leaves told: ${nodes.map(node => node.lapsed.reduce((sum, { members }) => sum + members.length, 0)).join(' + ')}`)
  assert.deepEqual((await adapters[1]?.presence.members('p:a'))?.map(entry => entry.id), ['alive'])
  assert.equal(await redis.sismember(`${prefix}:presence:nodes`, deadId), 0)
  const one = nodes.flatMap(node => node.lapsed).find(({ room }) => room === 'p:b')?.members.find(entry => entry.id === 'p:b-7')
  assert.deepEqual(one?.params, { userId: 7 }, 'a lapsed member keeps its params')
  assert.equal(one?.nodeId, deadId)
})

test('a node that closes removes what is left of its entries and sets', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const node = fakeNode()
  const adapter = redisAdapter({ url, prefix })
  await adapter.start(node)
  await adapter.presence.enter('p:r', member(node, 'stays-behind'))
  const redis = rawClient(t, url)
  assert.equal(await redis.hlen(`${prefix}:db0:presence:{p:r}`), 1)
  await adapter.close()
  assert.equal(await redis.hlen(`${prefix}:db0:presence:{p:r}`), 0)
  assert.equal(await redis.exists(`${prefix}:presence:node:${node.nodeId}`), 0)
  assert.equal(await redis.sismember(`${prefix}:presence:nodes`, node.nodeId), 0)
})

test('Redis restarted empty: the node writes its members again, those that left meanwhile excepted', async (t) => {
  const server = await useRedisServer(t, await freePort())
  if (server === undefined) return
  const prefix = uniquePrefix()
  const node = fakeNode()
  const adapter = await started(t, { url: server.url, prefix, stallTimeout: 500 }, node)
  await adapter.presence.enter('p:r', member(node, 'kept'))
  await adapter.presence.enter('p:r', member(node, 'leaving'))
  await server.kill()
  assert.equal(await adapter.presence.exit('p:r', 'leaving'), false, 'not confirmed while Redis is away')
  await adapter.presence.enter('p:r', member(node, 'entered-meanwhile'))
  await assert.rejects(adapter.presence.members('p:r'), RedisUnavailableError)
  const failed = adapter.stats?.().presenceFailed ?? 0
  assert.ok(failed >= 2, `presenceFailed ${failed}`)
  await server.start()
  await eventually(async () => {
    try {
      return (await adapter.presence.members('p:r')).map(entry => entry.id).sort().join() === 'entered-meanwhile,kept'
    } catch {
      return false
    }
  }, 5000, 'the members written again')
  const redis = rawClient(t, server.url)
  assert.equal(await redis.sismember(`${prefix}:presence:nodes`, node.nodeId), 1, 'listed again for the reapers')
})

test('a node whose entries a reaper took (its set gone) writes them again', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const node = fakeNode()
  const adapter = await started(t, { url, prefix }, node)
  await adapter.presence.enter('p:r', member(node, 'me'))
  const redis = rawClient(t, url)
  await redis.del(`${prefix}:db0:presence:{p:r}`, `${prefix}:presence:node:${node.nodeId}`)
  await (adapter.presence as unknown as Reaper).reap()
  await eventually(async () => (await adapter.presence.members('p:r')).length === 1, 3000, 'the entry back')
})

test('an exit that Redis did not answer (a stall) is written when it answers again, and told then as a leave; an enter is written then too', async (t) => {
  const server = await useRedisServer(t, await freePort())
  if (server === undefined) return
  const prefix = uniquePrefix()
  const node = fakeNode()
  const adapter = await started(t, { url: server.url, prefix, stallTimeout: 300 }, node)
  await adapter.presence.enter('p:r', member(node, 'leaving'))
  server.pause()
  assert.equal(await adapter.presence.exit('p:r', 'leaving'), false, 'not confirmed while Redis stalls')
  // An enter that Redis does not answer resolves all the same, counted, and is written later.
  await adapter.presence.enter('p:r', member(node, 'entered-in-the-stall'))
  await assert.rejects(adapter.presence.members('p:r'), RedisUnavailableError)
  assert.ok((adapter.stats?.().presenceFailed ?? 0) >= 2)
  assert.deepEqual(node.lapsed, [])
  server.resume()
  await eventually(() => node.lapsed.length === 1, 5000, 'the leave told once the exit is written')
  const told: FakeNode['lapsed'] = node.lapsed
  assert.deepEqual(told.flatMap(({ members }) => members.map(entry => entry.id)), ['leaving'])
  await eventually(async () => (await adapter.presence.members('p:r')).map(entry => entry.id).join() === 'entered-in-the-stall', 5000, 'the stalled enter written')
})
