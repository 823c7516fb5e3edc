import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { Redis } from 'ioredis'
import { redisAdapter, type RedisAdapterOptions } from '../dist/adapters/redis/index.js'
import { join, settle, startNode, type TestNode } from './adapter-contract.js'
import { eventually, hasRedisServerBinary, rawClient, REDIS_URL, uniquePrefix, useRedis, useRedisServer } from './redis-env.js'

/** Two hubs on one Redis and one prefix. */
async function twoNodes (t: TestContext, url: string, prefix = uniquePrefix()): Promise<[TestNode, TestNode]> {
  return [await startNode(t, redisAdapter({ url, prefix })), await startNode(t, redisAdapter({ url, prefix }))]
}

function publishCalls (info: string): number {
  const match = /cmdstat_publish:calls=(\d+)/.exec(info)
  return match === null ? 0 : Number(match[1])
}

/**
 * Builds a message in the adapter's framing (see lib/adapters/redis/codec.ts) with any header
 * bytes, a sequence number (1 unless given) and a publish time (now unless given).
 */
function framed (flags: number, header: string, payload = 'x', version = 3, sequence = 1, publishedAt = Date.now()): Buffer {
  const head = Buffer.from(header)
  const preamble = Buffer.alloc(18)
  preamble.set([0x77, 0x68, version, flags])
  preamble.writeUInt32BE(head.length, 4)
  preamble.writeUInt32BE(sequence, 8)
  preamble.writeUIntBE(publishedAt, 12, 6)
  return Buffer.concat([preamble, head, Buffer.from(payload)])
}

test('a broadcast, a room broadcast or a sendTo is one PUBLISH whatever the number of clients and nodes', async (t) => {
  // A Redis of this test's own when possible, so that nobody else's PUBLISH shows in its counters.
  const url = hasRedisServerBinary ? (await useRedisServer(t))?.url : await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const [a, b] = await twoNodes(t, url, prefix)
  const c = await startNode(t, redisAdapter({ url, prefix }))
  const clients = await Promise.all(Array.from({ length: 60 }, (_, i) => join([a, b, c][i % 3] as TestNode, i % 2 === 0 ? ['even'] : [])))
  const remote = clients[1]!
  const listener = rawClient(t, url)
  let seen = 0
  listener.on('pmessageBuffer', () => { seen++ })
  await listener.psubscribe(`${prefix}:db0:*`)
  const admin = rawClient(t, url)
  const before = publishCalls(await admin.info('commandstats'))

  for (let i = 0; i < 10; i++) a.app.hub.broadcast(`all ${i}`)
  for (let i = 0; i < 5; i++) a.app.hub.broadcast(`even ${i}`, { room: 'even' })
  for (let i = 0; i < 5; i++) a.app.hub.sendTo(remote.id, `direct ${i}`)
  await eventually(() => clients.every(client => client.data().length >= 10), 5000, 'every client to get the broadcasts')
  await eventually(() => remote.data().length === 15, 5000, 'the direct messages')
  await eventually(() => seen === 20, 2000, '20 messages on the channels')

  const calls = publishCalls(await admin.info('commandstats')) - before
  if (hasRedisServerBinary) assert.equal(calls, 20)
  else assert.ok(calls >= 20)
  assert.equal(a.app.hub.stats()['adapter.published'], 20)
  // Each node gets what its clients can: b holds the sendTo target, c only broadcasts and room members.
  assert.equal(b.app.hub.stats()['adapter.received'], 20)
  assert.equal(c.app.hub.stats()['adapter.received'], 15)
  assert.equal(a.app.hub.stats()['adapter.received'], 0)
})

/**
 * Two nodes, a client of the second, and a plain Redis connection to publish on the channel to
 * everyone as any publisher would; undefined without a Redis.
 */
async function channelScene (t: TestContext): Promise<{ a: TestNode, b: TestNode, b1: Awaited<ReturnType<typeof join>>, raw: Redis, channel: string } | undefined> {
  const url = await useRedis(t)
  if (url === undefined) return undefined
  const prefix = uniquePrefix()
  const [a, b] = await twoNodes(t, url, prefix)
  return { a, b, b1: await join(b), raw: rawClient(t, url), channel: `${prefix}:db0:all` }
}

test('malformed and foreign messages on the channel are ignored and counted, never delivered', async (t) => {
  const scene = await channelScene(t)
  if (scene === undefined) return
  const { a, b, b1, raw, channel } = scene
  const garbage: Array<string | Buffer> = [
    'hello',
    '{"kind":"broadcast","payload":"x"}',
    Buffer.alloc(0),
    Buffer.from([0x77, 0x68, 2]),
    Buffer.from([0x77, 0x68, 2, 0, 0, 0, 0, 0, 0, 0]),
    framed(0, '["n",null,null]', 'x', 1),
    framed(4, '["n",null,null]'),
    Buffer.concat([framed(0, '["n",null,null]').subarray(0, 18), Buffer.from('["n"')]).fill(0xff, 4, 8),
    framed(0, '["n",null,'),
    framed(0, '{"n":"n"}'),
    framed(0, '[42,null,null]'),
    framed(0, '["n",[1],null]'),
    framed(0, '["n",null,5]'),
    framed(0, '["n",null]'),
    framed(2, '["n"]'),
    framed(2, '["n",7]'),
    framed(0, '["n",["r"],null,7]'),
    framed(0, '["n",null,null]', 'x', 2)
  ]
  for (const message of garbage) await raw.publish(channel, message)
  // Well-formed but from this very node: ignored, and not malformed either.
  await raw.publish(channel, framed(0, JSON.stringify([b.app.hub.nodeId, null, null]), 'echo'))
  a.app.hub.broadcast('real')
  await settle(a, [b1])
  assert.deepEqual(b1.data(), ['real'])
  await eventually(() => a.app.hub.stats()['adapter.malformed'] === garbage.length, 2000, 'node a to count the garbage')
  assert.equal(b.app.hub.stats()['adapter.malformed'], garbage.length)
  // 'real' and settle's two sentinels (to everyone, and to b1).
  assert.equal(b.app.hub.stats()['adapter.received'], 3)

  // A well-formed envelope from a node the hubs do not know is delivered: the channel is the cluster.
  await raw.publish(channel, framed(1, '["another-node",null,null]', 'from outside'))
  await eventually(() => b1.data().length === 2, 2000, 'the foreign envelope')
  assert.equal(b1.data()[1], `binary:${Buffer.from('from outside').toString('hex')}`)
})

test('an envelope that comes after a later one of its publisher is dropped as late; a sequence that starts again is delivered', async (t) => {
  const scene = await channelScene(t)
  if (scene === undefined) return
  const { a, b, b1, raw, channel } = scene
  const header = '["publisher",null,null]'
  const start = Date.now()
  // As a shard's failover leaves them: 2 was held up and comes after 3.
  await raw.publish(channel, framed(0, header, 'one', 3, 1, start))
  await raw.publish(channel, framed(0, header, 'three', 3, 3, start + 2))
  await raw.publish(channel, framed(0, header, 'two', 3, 2, start + 1))
  // The same number again, published no later: a duplicate, dropped too.
  await raw.publish(channel, framed(0, header, 'three again', 3, 3, start + 2))
  // The publisher's counter started again (it forgot an idle channel's): published later, delivered.
  await raw.publish(channel, framed(0, header, 'one anew', 3, 1, start + 3))
  await raw.publish(channel, framed(0, header, 'two anew', 3, 2, start + 4))
  a.app.hub.broadcast('real')
  await settle(a, [b1])
  assert.deepEqual(b1.data(), ['one', 'three', 'one anew', 'two anew', 'real'])
  assert.equal(b.app.hub.stats()['adapter.late'], 2)
  // 3 was seen after 1: one envelope (2) counted lost when the gap showed, before 2 came late.
  assert.equal(b.app.hub.stats()['adapter.lost'], 1)
})

test('hubs with different prefixes on one Redis do not hear each other', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const a = await startNode(t, redisAdapter({ url, prefix: uniquePrefix() }))
  const b = await startNode(t, redisAdapter({ url, prefix: uniquePrefix() }))
  const a1 = await join(a)
  const b1 = await join(b)
  a.app.hub.broadcast('only here')
  await settle(b, [b1])
  await settle(a, [a1])
  assert.deepEqual(b1.data(), [])
  assert.deepEqual(a1.data(), ['only here'])
  assert.equal(await a.app.hub.clusterCount(), 1)
})

/** A client of the user's: lazy (not connected yet) and with a keyPrefix, closed after the test. */
function ownClient (t: TestContext, url: string, keyPrefix: string): Redis {
  const own = new Redis(url, { lazyConnect: true, keyPrefix })
  t.after(() => own.disconnect())
  return own
}

test('with clients of your own, the adapter uses them, honours their keyPrefix, and leaves them open on close', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const keyPrefix = `${uniquePrefix()}:`
  const own = ownClient(t, url, keyPrefix)
  const connected = ownClient(t, url, keyPrefix)
  await connected.connect()
  const a = await startNode(t, redisAdapter({ client: own, prefix }))
  const b = await startNode(t, redisAdapter({ client: connected, prefix }))
  // Same prefix, no keyPrefix: another cluster.
  const other = await startNode(t, redisAdapter({ url, prefix }))
  const stranger = await join(other)
  const a1 = await join(a)
  const b1 = await join(b)
  b.app.hub.broadcast('b to a')
  a.app.hub.sendTo(b1.id, 'a to b')
  await settle(b, [a1, b1])
  await settle(a, [a1, b1])
  assert.deepEqual(a1.data(), ['b to a'])
  assert.deepEqual(b1.data(), ['b to a', 'a to b'])
  await eventually(async () => await b.app.hub.clusterCount() === 2, 3000, 'node a in the count')
  const raw = rawClient(t, url)
  assert.equal(await raw.exists(`${keyPrefix}${prefix}:node:${a.app.hub.nodeId}`), 1)
  await settle(other, [stranger])
  assert.deepEqual(stranger.data(), [])
  assert.equal(await other.app.hub.clusterCount(), 1)

  await a.app.close()
  assert.equal(own.status, 'ready')
  assert.equal(await own.ping(), 'PONG')
  assert.equal(own.listenerCount('ready'), 0)
  assert.equal(await raw.exists(`${keyPrefix}${prefix}:node:${a.app.hub.nodeId}`), 0)
  assert.equal(await b.app.hub.clusterCount(), 1)
  // Closed while its client is still open (the hooks would close the client first): it cleans up.
  await b.app.close()
  assert.equal(await raw.exists(`${keyPrefix}${prefix}:nodes`), 0)
})

test('with neither url nor client, the adapter uses the Redis on localhost', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  if (url !== 'redis://127.0.0.1:6379') return t.skip(`the Redis here is ${url}, not the default one`)
  const prefix = uniquePrefix()
  const a = await startNode(t, redisAdapter({ prefix }))
  const b = await startNode(t, redisAdapter({ url: REDIS_URL, prefix }))
  const b1 = await join(b)
  a.app.hub.broadcast('over the default')
  await settle(a, [b1])
  assert.deepEqual(b1.data(), ['over the default'])
})

test('bad options are refused at once, naming the option', () => {
  const cases: Array<[unknown, string]> = [
    [null, 'adapter'],
    [{ url: 'redis://127.0.0.1:1', client: new Redis({ lazyConnect: true }) }, 'adapter.url'],
    [{ url: 6379 }, 'adapter.url'],
    [{ client: { publish () {} } }, 'adapter.client'],
    [{ prefix: '' }, 'adapter.prefix'],
    [{ leaseTtl: 0 }, 'adapter.leaseTtl'],
    [{ leaseTtl: 1500.5 }, 'adapter.leaseTtl'],
    [{ leaseTtl: '10000' }, 'adapter.leaseTtl'],
    [{ cluster: [] }, 'adapter.cluster'],
    [{ cluster: 'localhost:7000' }, 'adapter.cluster'],
    [{ cluster: [null] }, 'adapter.cluster'],
    [{ url: 'redis://127.0.0.1:1', cluster: [7000] }, 'adapter.url'],
    [{ prefix: 'app{1}' }, 'adapter.prefix'],
    [{ unsubscribeDelay: -1 }, 'adapter.unsubscribeDelay'],
    [{ unsubscribeDelay: 0.5 }, 'adapter.unsubscribeDelay']
  ]
  for (const [options, name] of cases) {
    assert.throws(() => redisAdapter(options as RedisAdapterOptions), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'FST_WS_HUB_INVALID_OPTION')
      assert.match(error.message, new RegExp(`"${name.replace('.', '\\.')}"`))
      return true
    })
  }
})

test('an adapter closed before it started closes quietly', async () => {
  const adapter = redisAdapter()
  await adapter.close()
  await adapter.close()
  assert.equal(adapter.publish({ kind: 'send', to: 'x', payload: Buffer.from('x'), binary: false }), false)
  assert.deepEqual(adapter.stats?.(), {
    published: 0, received: 0, receivedBytes: 0, dropped: 1, malformed: 0, late: 0, recoveryFailed: 0, presenceFailed: 0, lost: 0, gaps: 0, publishers: 0, pendingBytes: 0, subscriptions: 0
  })
  assert.equal(adapter.watch?.('room', 'r'), undefined)
  adapter.unwatch?.('room', 'r')
  await assert.rejects(adapter.clusterCount(), { code: 'FST_WS_HUB_REDIS_UNAVAILABLE' })
})

test('apps on different databases of one Redis are different clusters, for url and for a client of your own', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const db1 = await startNode(t, redisAdapter({ url: `${url}/1`, prefix }))
  const db2 = await startNode(t, redisAdapter({ url: `${url}/2`, prefix }))
  const own = new Redis(url, { db: 2 })
  t.after(() => own.disconnect())
  const db2Client = await startNode(t, redisAdapter({ client: own, prefix }))
  const db1Again = await startNode(t, redisAdapter({ url: `${url}/1`, prefix }))
  const [c1, c2, c2Own, c1Again] = await Promise.all([join(db1), join(db2), join(db2Client), join(db1Again)])

  db1.app.hub.broadcast('to db 1')
  db2.app.hub.broadcast('to db 2')
  await settle(db1, [c1, c1Again])
  await settle(db2, [c2, c2Own])
  assert.deepEqual(c1Again.data(), ['to db 1'], 'same db: it reaches the other node')
  assert.deepEqual(c2Own.data(), ['to db 2'], 'same db through a client of your own: it reaches it')
  assert.deepEqual(c2.data(), ['to db 2'], 'db 2 never hears db 1')
  assert.deepEqual(c1.data(), ['to db 1'], 'db 1 never hears db 2')
  assert.equal(db1.app.hub.stats()['adapter.received'], 0)
  await eventually(async () => await db1.app.hub.clusterCount() === 2 && await db2.app.hub.clusterCount() === 2, 3000, 'a count of 2 per database')
})

test('on a standalone Redis a publisher\'s messages reach each node in publish order, whatever their audience', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const [a, b] = await twoNodes(t, url, prefix)
  const member = await join(b, ['red', 'blue'])
  const expected: string[] = []
  for (let i = 0; i < 300; i++) {
    const kind = i % 4
    const message = `${kind} ${i}`
    if (kind === 0) a.app.hub.broadcast(message)
    else if (kind === 1) a.app.hub.broadcast(message, { room: 'red' })
    else if (kind === 2) a.app.hub.broadcast(message, { room: ['blue', 'red'] })
    else a.app.hub.sendTo(member.id, message)
    expected.push(message)
  }
  await settle(a, [member])
  // One connection carries every channel from Redis to b, in the order Redis ran the PUBLISHes.
  assert.deepEqual(member.data(), expected)
})
