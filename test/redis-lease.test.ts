import assert from 'node:assert/strict'
import { once } from 'node:events'
import { test } from 'node:test'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import { join, startNode } from './adapter-contract.js'
import { eventually, rawClient, spawnHub, uniquePrefix, useRedis } from './redis-env.js'

const dist = new URL('../dist/', import.meta.url)

/**
 * A hub with the Redis adapter in a process of its own, for the tests that kill it or watch it
 * exit. Plain JavaScript on the built package (no tsx), so that it starts fast. Env: REDIS_URL,
 * PREFIX, LEASE_TTL; CLOSE_AT_ONCE=1 closes the app once it is up (the process must then exit by
 * itself). Prints one JSON line, { port, nodeId }, once it listens.
 */
const childScript = `
import Fastify from 'fastify'
import fastifyWsHub from '${new URL('index.js', dist).href}'
import { redisAdapter } from '${new URL('adapters/redis/index.js', dist).href}'

const app = Fastify()
await app.register(fastifyWsHub, {
  heartbeat: false,
  handshakeMessage: false,
  adapter: redisAdapter({ url: process.env.REDIS_URL, prefix: process.env.PREFIX, leaseTtl: Number(process.env.LEASE_TTL) })
})
app.hub.route({
  url: '/ws',
  onOpen (client) {
    for (const room of client.request.query.rooms?.split(',') ?? []) client.join(room)
    client.send('id:' + client.id)
  }
})
await app.listen({ port: 0, host: '127.0.0.1' })
process.stdout.write(JSON.stringify({ port: app.server.address().port, nodeId: app.hub.nodeId }) + '\\n')
if (process.env.CLOSE_AT_ONCE === '1') await app.close()
`

test('a node killed with SIGKILL drops out of clusterCount within the lease TTL', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const leaseTtl = 1000
  const local = await startNode(t, redisAdapter({ url, prefix, leaseTtl }))
  await join(local, ['r'])
  const doomed = await spawnHub(t, childScript, { REDIS_URL: url, PREFIX: prefix, LEASE_TTL: String(leaseTtl) })
  const clients = await Promise.all(Array.from({ length: 5 }, () => join(doomed, ['r'])))
  assert.equal(clients.length, 5)
  await eventually(async () => await local.app.hub.clusterCount() === 6, 3000, 'the child\'s 5 clients in the count')
  assert.equal(await local.app.hub.clusterRoomSize('r'), 6)

  const exited = once(doomed.child, 'exit')
  doomed.child.kill('SIGKILL')
  await exited
  const killedAt = Date.now()
  await eventually(async () => await local.app.hub.clusterCount() === 1, leaseTtl + 1000, 'the dead node to drop out')
  const dropMs = Date.now() - killedAt
  t.diagnostic(`dead node left clusterCount ${dropMs} ms after SIGKILL (leaseTtl ${leaseTtl} ms)`)
  assert.ok(dropMs <= leaseTtl + 100, `dropped after ${dropMs} ms`)
  assert.equal(await local.app.hub.clusterRoomSize('r'), 1)
  const redis = rawClient(t, url)
  assert.equal(await redis.sismember(`${prefix}:nodes`, doomed.nodeId), 0)
})

test('a node that closes leaves clusterCount at once and deletes its lease', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const a = await startNode(t, redisAdapter({ url, prefix }))
  const b = await startNode(t, redisAdapter({ url, prefix }))
  await join(a)
  await join(b)
  await join(b, ['room'])
  const passing = await join(b, ['room', 'brief'])
  await eventually(async () => await a.app.hub.clusterCount() === 4, 3000, 'clusterCount 4')
  const redis = rawClient(t, url)
  const lease = `${prefix}:node:${b.app.hub.nodeId}`
  assert.deepEqual(await redis.hgetall(lease), { c: '3', 'r:room': '2', 'r:brief': '1' })
  passing.socket.close()
  // The lease follows: a room that empties leaves it, one that shrinks is updated.
  await eventually(async () => Object.keys(await redis.hgetall(lease)).length === 2, 3000, 'the lease to lose r:brief')
  assert.deepEqual(await redis.hgetall(lease), { c: '2', 'r:room': '1' })

  await b.app.close()
  assert.equal(await a.app.hub.clusterCount(), 1)
  assert.equal(await a.app.hub.clusterRoomSize('room'), 0)
  assert.equal(await redis.exists(lease), 0)
  assert.deepEqual(await redis.smembers(`${prefix}:nodes`), [a.app.hub.nodeId])
})

test('a live node keeps refreshing its lease past its TTL', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const leaseTtl = 300
  const a = await startNode(t, redisAdapter({ url, prefix, leaseTtl }))
  const b = await startNode(t, redisAdapter({ url, prefix, leaseTtl }))
  await join(b)
  await join(b)
  await eventually(async () => await a.app.hub.clusterCount() === 2, 2000, 'clusterCount 2')
  const redis = rawClient(t, url)
  const lease = `${prefix}:node:${b.app.hub.nodeId}`
  // Watch it over more than three TTLs: the lease never lapses and the count never dips.
  const until = Date.now() + 4 * leaseTtl
  while (Date.now() < until) {
    const ttl = await redis.pttl(lease)
    assert.ok(ttl > 0 && ttl <= leaseTtl, `lease TTL ${ttl}`)
    assert.equal(await a.app.hub.clusterCount(), 2)
    await new Promise(resolve => setTimeout(resolve, 25))
  }
})

test('a process whose hub closes exits by itself: the adapter leaves no handle open', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const node = await spawnHub(t, childScript, { REDIS_URL: url, PREFIX: prefix, LEASE_TTL: '10000', CLOSE_AT_ONCE: '1' })
  const exitedAt = Date.now()
  const [code] = await Promise.race([
    once(node.child, 'exit'),
    new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error('the child did not exit within 5 s')), 5000).unref())
  ])
  assert.equal(code, 0)
  assert.ok(Date.now() - exitedAt < 5000)
  const redis = rawClient(t, url)
  assert.equal(await redis.exists(`${prefix}:node:${node.nodeId}`), 0)
})

test('a lease that lapses (expired or flushed) while the node lives is written again whole', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const leaseTtl = 600
  const a = await startNode(t, redisAdapter({ url, prefix, leaseTtl }))
  await join(a, ['first'])
  const redis = rawClient(t, url)
  const lease = `${prefix}:node:${a.app.hub.nodeId}`
  await eventually(async () => (await redis.hget(lease, 'r:first')) === '1', 2000, 'the first lease')

  // Gone without the node knowing; then a change, which alone would write only what changed.
  await redis.del(lease)
  await join(a, ['second'])
  await eventually(async () => {
    const fields = await redis.hgetall(lease)
    return fields.c === '2' && fields['r:first'] === '1' && fields['r:second'] === '1'
  }, leaseTtl + 1000, 'the whole lease back')
  assert.ok(await redis.pttl(lease) > 0)

  // Gone with nothing changing: the next refresh notices and writes it whole.
  await redis.del(lease)
  await eventually(async () => (await redis.hget(lease, 'r:second')) === '1', leaseTtl + 1000, 'the lease back after a refresh')
  assert.deepEqual(await redis.hgetall(lease), { c: '2', 'r:first': '1', 'r:second': '1' })
})

test('a lease write that Redis refuses is retried whole until it goes through, without a crash', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const redis = rawClient(t, url)
  // The members set is taken by a string: every lease transaction fails (WRONGTYPE), and so do counts.
  await redis.set(`${prefix}:nodes`, 'not a set')
  const a = await startNode(t, redisAdapter({ url, prefix, leaseTtl: 600 }))
  const b = await startNode(t, redisAdapter({ url, prefix, leaseTtl: 600 }))
  await join(b, ['room'])
  // Redis answered, with an error: still "counts unknown", with Redis's reply as the cause.
  await assert.rejects(a.app.hub.clusterCount(), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'FST_WS_HUB_REDIS_UNAVAILABLE')
    assert.match(String((error.cause as Error).message), /WRONGTYPE/)
    return true
  })

  await redis.del(`${prefix}:nodes`)
  await eventually(async () => await a.app.hub.clusterCount() === 1, 2000, 'the lease to go through')
  assert.deepEqual(await redis.hgetall(`${prefix}:node:${b.app.hub.nodeId}`), { c: '1', 'r:room': '1' })
})
