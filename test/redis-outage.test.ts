import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { Redis } from 'ioredis'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import { join, settle, startNode, type TestNode } from './adapter-contract.js'
import { eventually, freePort, uniquePrefix, useRedisServer, type RedisServer } from './redis-env.js'

/** Records every unhandled rejection and uncaught exception while the test runs. */
function watchProcess (t: TestContext): unknown[] {
  const failures: unknown[] = []
  const record = (error: unknown): void => { failures.push(error) }
  process.on('unhandledRejection', record)
  process.on('uncaughtException', record)
  t.after(() => {
    process.off('unhandledRejection', record)
    process.off('uncaughtException', record)
  })
  return failures
}

/** Broadcasts numbered probes from `from` every 50 ms until `until` holds; resolves with the elapsed ms. */
async function probeUntil (from: TestNode, until: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const startedAt = Date.now()
  let probe = 0
  await eventually(() => {
    if (until()) return true
    from.app.hub.broadcast(`probe ${probe++}`)
    return false
  }, timeoutMs, what)
  return Date.now() - startedAt
}

test('Redis down: local delivery goes on, cross-node publishes are dropped (never replayed), and delivery resumes when it returns', async (t) => {
  const failures = watchProcess(t)
  const server = await useRedisServer(t) as RedisServer | undefined
  if (server === undefined) return
  const prefix = uniquePrefix()
  const a = await startNode(t, redisAdapter({ url: server.url, prefix, leaseTtl: 3000 }))
  const b = await startNode(t, redisAdapter({ url: server.url, prefix, leaseTtl: 3000 }))
  const a1 = await join(a)
  const b1 = await join(b)
  a.app.hub.broadcast('before')
  await settle(a, [a1, b1])
  assert.deepEqual(b1.data(), ['before'])

  await server.kill()
  const killedAt = Date.now()
  // The outage is seen at the first publish that finds the link down.
  await probeUntil(a, () => (a.app.hub.stats()['adapter.dropped'] ?? 0) > 0, 3000, 'node a to see the outage')
  const droppedBefore = a.app.hub.stats()['adapter.dropped'] as number
  // Traffic goes on through the outage, long enough for the reconnect backoff to reach its cap.
  let during = 0
  await eventually(() => {
    a.app.hub.broadcast(`during ${during++}`)
    return Date.now() - killedAt > 1500
  }, 3000, 'the outage to last 1.5 s')
  assert.equal(a.app.hub.sendTo(b1.id, 'during direct'), false)
  assert.equal(a.app.hub.stats()['adapter.dropped'], droppedBefore + during + 1)
  b.app.hub.broadcast('local on b')
  await eventually(() => b1.data().includes('local on b'), 2000, 'local delivery on node b')
  await eventually(() => a1.data().filter(m => m.startsWith('during')).length === during, 2000, 'local delivery on node a')
  await assert.rejects(a.app.hub.clusterCount(), { code: 'FST_WS_HUB_REDIS_UNAVAILABLE', statusCode: 503 })

  const restartedAt = Date.now()
  await server.start()
  const resumeMs = await probeUntil(a, () => b1.data().some(m => m.startsWith('probe')), 7000, 'cross-node delivery to resume')
  t.diagnostic(`cross-node delivery resumed ${Date.now() - restartedAt} ms after redis-server was restarted (${resumeMs} ms after it answered)`)
  assert.ok(Date.now() - restartedAt < 7000)

  a.app.hub.broadcast('after')
  await settle(a, [a1, b1])
  assert.deepEqual(b1.data().filter(m => m.startsWith('during')), [], 'nothing sent during the outage arrives late')
  assert.equal(b1.data().at(-1), 'after')
  await eventually(async () => await a.app.hub.clusterCount() === 2, 3000, 'the leases to be written again')
  assert.deepEqual(failures, [])
})

test('Redis unreachable at start: the hub starts, serves its own clients, and joins the cluster once Redis is there', async (t) => {
  const failures = watchProcess(t)
  const port = await freePort()
  const url = `redis://127.0.0.1:${port}`
  const prefix = uniquePrefix()
  const startedAt = Date.now()
  const a = await startNode(t, redisAdapter({ url, prefix }))
  assert.ok(Date.now() - startedAt < 3000, 'registration does not wait for Redis')
  const a1 = await join(a)
  a.app.hub.broadcast('alone')
  assert.deepEqual(await a1.received(2), [`id:${a1.id}`, 'alone'])
  assert.equal(a.app.hub.stats()['adapter.dropped'], 1)
  await assert.rejects(a.app.hub.clusterRoomSize('any'), { code: 'FST_WS_HUB_REDIS_UNAVAILABLE' })

  // With a lazy client of the user's, too: the adapter connects it, and does not wait for Redis.
  const lazy = new Redis(url, { lazyConnect: true })
  t.after(() => lazy.disconnect())
  const d = await startNode(t, redisAdapter({ client: lazy, prefix }))
  assert.equal(d.app.hub.broadcast('alone too'), 0)

  // A node closed while Redis is away closes at once.
  const c = await startNode(t, redisAdapter({ url, prefix }))
  const closing = Date.now()
  await c.app.close()
  assert.ok(Date.now() - closing < 1000)

  // Same port, now with a Redis: node a's subscription and lease go through by themselves.
  const server = await useRedisServer(t, port)
  if (server === undefined) return
  const b = await startNode(t, redisAdapter({ url, prefix }))
  const b1 = await join(b)
  await probeUntil(b, () => a1.data().some(m => m.startsWith('probe')), 7000, 'node a to join')
  await eventually(async () => await b.app.hub.clusterCount() === 2, 3000, 'node a in the count')
  assert.equal(b1.data().length > 0, true)
  assert.deepEqual(failures, [])
})
