// Presence across nodes on a real Redis: members and events on two nodes, a client that resumed on
// another node, and a node SIGKILLed whose members leave within the lease TTL, each leave told once.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { test } from 'node:test'
import { NotPresenceRoomError } from '../dist/index.js'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import { sleep, stopReading, waitFor } from './helpers.js'
import { enter, idsOf, PRESENCE, startPresenceNode, type PresenceClient } from './presence-env.js'
import { rawSession, startRecoveryHub } from './recovery-env.js'
import { eventually, rawClient, spawnHub, uniquePrefix, useRedis } from './redis-env.js'

const dist = new URL('../dist/', import.meta.url)

/** A presence hub in a process of its own, to be SIGKILLed. Env: REDIS_URL, PREFIX, LEASE_TTL. Prints { port, nodeId }. */
const childScript = `
import Fastify from 'fastify'
import fastifyWsHub from '${new URL('index.js', dist).href}'
import { redisAdapter } from '${new URL('adapters/redis/index.js', dist).href}'

const app = Fastify()
await app.register(fastifyWsHub, {
  heartbeat: false,
  handshakeMessage: false,
  presence: { rooms: room => room.startsWith('p:'), params: ['userId'] },
  adapter: redisAdapter({ url: process.env.REDIS_URL, prefix: process.env.PREFIX, leaseTtl: Number(process.env.LEASE_TTL) })
})
app.hub.route({
  url: '/ws',
  onUpgrade: request => ({ userId: request.query.user }),
  async onOpen (client) {
    await Promise.all((client.request.query.rooms?.split(',') ?? []).map(room => client.join(room)))
    client.send('id:' + client.id)
  }
})
await app.listen({ port: 0, host: '127.0.0.1' })
process.stdout.write(JSON.stringify({ port: app.server.address().port, nodeId: app.hub.nodeId }) + '\\n')
`

function sorted (ids: string[]): string[] {
  return [...ids].sort()
}

test('two nodes on Redis: presence lists the members of both with their params; joins and leaves reach the others on both nodes, not the joiner', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const a = await startPresenceNode(t, redisAdapter({ url, prefix }))
  const b = await startPresenceNode(t, redisAdapter({ url, prefix }))
  const onA = await enter(a, 'ann', ['p:room'])
  const onB = await enter(b, 'ben', ['p:room'])
  await waitFor(() => idsOf(onA, '$join').length === 1, 3000, 'ann hears ben join')
  assert.deepEqual(onA.events()[0], { type: '$join', data: { room: 'p:room', id: onB.id, params: { userId: 'ben' } } })
  const late = await enter(b, 'lea', ['p:room'])
  await waitFor(() => idsOf(onA, '$join').length === 2 && idsOf(onB, '$join').length === 1, 3000, 'both hear lea join')

  for (const node of [a, b]) {
    const members = await node.app.hub.presence('p:room')
    assert.deepEqual(sorted(members.map(member => member.id)), sorted([onA.id, onB.id, late.id]))
    const ben = members.find(member => member.id === onB.id)
    assert.equal(ben?.nodeId, b.app.hub.nodeId)
    assert.deepEqual(ben?.params, { userId: 'ben' })
  }
  await assert.rejects(a.app.hub.presence('plain'), NotPresenceRoomError)

  late.socket.send('leave:p:room')
  await waitFor(() => idsOf(onA, '$leave').length === 1 && idsOf(onB, '$leave').length === 1, 3000, 'both hear lea leave')
  onB.socket.close()
  await waitFor(() => idsOf(onA, '$leave').length === 2, 3000, 'ann hears ben leave')
  assert.deepEqual(idsOf(onA, '$leave'), [late.id, onB.id])
  assert.deepEqual(idsOf(onB, '$join'), [late.id], 'ben heard lea only: not itself')
  assert.equal(late.events().length, 0, 'lea heard nothing of its own join and leave')
  assert.deepEqual((await b.app.hub.presence('p:room')).map(member => member.id), [onA.id])
})

test('a $join comes once the joiner is listed; the cluster-wide hub.join and hub.disconnect enter and remove members like their own joins and closes', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const a = await startPresenceNode(t, redisAdapter({ url, prefix }))
  const b = await startPresenceNode(t, redisAdapter({ url, prefix }))
  const onA = await enter(a, 'ann', ['p:room'])
  // Whenever ann hears a join, node A lists the joiner at that moment.
  const listedAtJoin: boolean[] = []
  onA.socket.on('message', (data) => {
    const event = JSON.parse(String(data)) as { type: string, data: { id: string } }
    if (event.type !== '$join') return
    a.app.hub.presence('p:room').then(members => { listedAtJoin.push(members.some(member => member.id === event.data.id)) }, () => { listedAtJoin.push(false) })
  })
  const bob = await enter(b, 'bob', [])
  // Node A makes bob (on B) join the presence room: B enters him, the room hears it.
  assert.equal(await a.app.hub.join(bob.id, 'p:room'), 1)
  await waitFor(() => listedAtJoin.length === 1, 3000, 'ann to hear bob join')
  const cid = await enter(b, 'cid', ['p:room'])
  await waitFor(() => listedAtJoin.length === 2, 3000, 'ann to hear cid join')
  assert.deepEqual(listedAtJoin, [true, true])
  assert.deepEqual(idsOf(onA, '$join'), [bob.id, cid.id])
  // Node A disconnects bob: his close on B is a leave like any.
  assert.equal(await a.app.hub.disconnect(bob.id, 4001, 'out'), 1)
  await waitFor(() => idsOf(onA, '$leave').length === 1, 3000, 'ann to hear bob leave')
  assert.deepEqual(idsOf(onA, '$leave'), [bob.id])
  assert.deepEqual(sorted((await a.app.hub.presence('p:room')).map(member => member.id)), sorted([onA.id, cid.id]))
})

test('a client that resumed on another node is not removed by its old node\'s late exit', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const options = { presence: PRESENCE, handshakeMessage: false as const }
  const a = await startRecoveryHub(t, { ...options, adapter: redisAdapter({ url, prefix }) })
  const b = await startRecoveryHub(t, { ...options, adapter: redisAdapter({ url, prefix }) })
  const watcher = await rawSession(t, b.url)
  watcher.socket.send(JSON.stringify({ type: 'join', data: { room: 'p:r' }, id: 1 }))
  const first = await rawSession(t, a.url)
  const { id, token } = await first.session()
  first.socket.send(JSON.stringify({ type: 'join', data: { room: 'p:r' }, id: 1 }))
  await waitFor(() => watcher.frames.some(frame => frame.type === '$join'), 3000, 'the watcher hears the join')
  // The first socket goes deaf (half-open): node A learns it is dead only when its probe goes unanswered.
  stopReading({ socket: first.socket } as unknown as Parameters<typeof stopReading>[0], { deaf: true })
  const resumed = await rawSession(t, b.url, { id, token })
  assert.equal((await resumed.session()).recovered, true)
  // Node A has let its client go by now; whatever order its exit and B's enter took, the member is B's.
  await waitFor(() => a.app.hub.clients.size === 0, 5000, 'node A to let its client go')
  await sleep(200)
  const members = await a.app.hub.presence('p:r')
  const member = members.find(entry => entry.id === id)
  assert.equal(member?.nodeId, b.app.hub.nodeId, 'the resumed member is listed on node B')
  const last = watcher.frames.filter(frame => frame.type === '$join' || frame.type === '$leave').at(-1)
  assert.equal(last?.type, '$join', 'the last the room heard of it is a join')
})

test('a node SIGKILLed: its members leave presence within the lease TTL, and each survivor\'s clients hear each leave once', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const leaseTtl = 1000
  // Two survivors, so that two reapers race for the dead node's entries.
  const a = await startPresenceNode(t, redisAdapter({ url, prefix, leaseTtl }))
  const b = await startPresenceNode(t, redisAdapter({ url, prefix, leaseTtl }))
  const watchers: PresenceClient[] = [await enter(a, 'wa', ['p:r']), await enter(b, 'wb', ['p:r'])]
  const doomed = await spawnHub(t, childScript, { REDIS_URL: url, PREFIX: prefix, LEASE_TTL: String(leaseTtl) })
  const victims = await Promise.all(Array.from({ length: 5 }, (_, index) => enter(doomed, `v${index}`, ['p:r'])))
  const victimIds = sorted(victims.map(victim => victim.id))
  await eventually(async () => (await a.app.hub.presence('p:r')).length === 7, 3000, 'seven members')
  await waitFor(() => watchers.every(watcher => idsOf(watcher, '$join').length >= 5), 3000, 'the watchers hear the joins')

  const exited = once(doomed.child, 'exit')
  doomed.child.kill('SIGKILL')
  await exited
  const killedAt = Date.now()
  await eventually(async () => (await b.app.hub.presence('p:r')).length === 2, leaseTtl + 1000, 'the dead node\'s members to leave presence')
  const goneMs = Date.now() - killedAt
  await waitFor(() => watchers.every(watcher => idsOf(watcher, '$leave').length >= 5), 2 * leaseTtl + 1000, 'the leaves')
  const leftMs = Date.now() - killedAt
  t.diagnostic(`members left presence ${goneMs} ms and leave events came ${leftMs} ms after SIGKILL (leaseTtl ${leaseTtl} ms)`)
  // The lease lapses at most leaseTtl after the kill; a reaper round (leaseTtl / 4) later the leaves
  // go out. The margins are for a loaded machine (polls of 20 ms, reads and fan-out that wait for CPU).
  assert.ok(goneMs <= leaseTtl + 300, `left presence after ${goneMs} ms`)
  assert.ok(leftMs <= 1.25 * leaseTtl + 600, `leave events after ${leftMs} ms`)
  // Late duplicates from a second reaper would come within a reaper round: wait two.
  await sleep(leaseTtl / 2)
  for (const watcher of watchers) assert.deepEqual(sorted(idsOf(watcher, '$leave')), victimIds, 'each leave once')
  const redis = rawClient(t, url)
  assert.equal(await redis.sismember(`${prefix}:presence:nodes`, doomed.nodeId), 0, 'the dead node is no longer listed')
  assert.equal(await redis.exists(`${prefix}:presence:node:${doomed.nodeId}`), 0)
})
