import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import type { HubEnvelope, HubNode } from '../dist/adapters/adapter.js'
import { redisAdapter, type RedisAdapterOptions } from '../dist/adapters/redis/index.js'
import type { RecordedEnvelope, RecoveryLimits, SessionRecord } from '../dist/recovery/store.js'
import { clusterAvailable, startRedisCluster } from './redis-cluster-env.js'
import { eventually, rawClient, uniquePrefix, useRedis } from './redis-env.js'

// The Redis adapter's RecoveryStore on its own, with a fake hub: what `record` delivers, what
// `read` gives back, sessions, and `release`.

/** A hub as far as the adapter sees it, that keeps what it is given. */
interface FakeNode extends HubNode {
  readonly delivered: HubEnvelope[]
  readonly released: string[]
  readonly warnings: unknown[]
  /** Whether this node holds a client (the hub's newer HubNode has it; the Redis store does not need it). */
  holds (clientId: string): boolean
}

function silentLogger (warnings: unknown[]): FastifyBaseLogger {
  const logger = {
    level: 'silent',
    fatal () {},
    error () {},
    warn (...args: unknown[]) { warnings.push(args) },
    info () {},
    debug () {},
    trace () {},
    silent () {},
    child: () => logger
  }
  return logger as unknown as FastifyBaseLogger
}

function fakeNode (onRelease: (clientId: string) => void = () => {}): FakeNode {
  const delivered: HubEnvelope[] = []
  const released: string[] = []
  const warnings: unknown[] = []
  return {
    nodeId: randomUUID(),
    delivered,
    released,
    warnings,
    deliver (envelope) { delivered.push(envelope) },
    holds: () => false,
    handleNodeMessage: () => null,
    onlineCount: () => 0,
    roomSize: () => 0,
    rooms: new Map(),
    membershipVersion: 0,
    log: silentLogger(warnings),
    release (clientId) {
      released.push(clientId)
      onRelease(clientId)
    },
    presenceLapsed () {}
  }
}

type Adapter = ReturnType<typeof redisAdapter>

/** A started adapter with recovery configured, closed after the test. */
async function started (t: TestContext, options: RedisAdapterOptions, node: FakeNode, limits: RecoveryLimits = { maxDisconnection: 5000, maxMessages: 10 }): Promise<Adapter> {
  const adapter = redisAdapter(options)
  adapter.recovery.configure(limits)
  await adapter.start(node)
  t.after(() => adapter.close())
  return adapter
}

function text (payload: string): HubEnvelope {
  return { kind: 'broadcast', payload: Buffer.from(payload), binary: false }
}

function toRoom (payload: string, ...rooms: string[]): HubEnvelope {
  return { kind: 'broadcast', payload: Buffer.from(payload), binary: false, rooms }
}

function payloads (envelopes: readonly HubEnvelope[]): string[] {
  return envelopes.map(envelope => envelope.payload.toString())
}

function positioned (envelope: HubEnvelope | undefined): RecordedEnvelope {
  assert.ok(envelope !== undefined && 'position' in envelope, 'a recorded envelope')
  return envelope as RecordedEnvelope
}

const session: SessionRecord = {
  token: 'token-1',
  params: 'digest',
  all: { epoch: 'e1', offset: 3 },
  rooms: { lobby: { epoch: 'e2', offset: 7 }, empty: null }
}

test('record delivers to every node that listens, its own publisher included, with positions in offset order', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const a = fakeNode()
  const b = fakeNode()
  const adapterA = await started(t, { url, prefix }, a)
  const adapterB = await started(t, { url, prefix }, b)
  await adapterA.watch?.('room', 'lobby')
  await adapterB.watch?.('room', 'lobby')

  for (let i = 1; i <= 3; i++) {
    assert.equal(adapterA.recovery.record(text(`all ${i}`)), true)
    assert.equal(adapterB.recovery.record(toRoom(`lobby ${i}`, 'lobby')), true)
  }
  await eventually(() => a.delivered.length === 6 && b.delivered.length === 6, 3000, 'six deliveries on each node')
  for (const node of [a, b]) {
    const all = node.delivered.map(positioned).filter(envelope => envelope.position.stream === '*')
    const lobby = node.delivered.map(positioned).filter(envelope => envelope.position.stream === 'r:lobby')
    assert.deepEqual(payloads(all), ['all 1', 'all 2', 'all 3'])
    assert.deepEqual(all.map(envelope => envelope.position.offset), [1, 2, 3])
    assert.deepEqual(lobby.map(envelope => envelope.position.offset), [1, 2, 3])
    assert.deepEqual(all.map(envelope => envelope.origin.node), [a.nodeId, a.nodeId, a.nodeId])
    assert.deepEqual(all.map(envelope => envelope.origin.ordinal), [1, 2, 3])
    assert.equal(new Set(lobby.map(envelope => envelope.position.epoch)).size, 1)
  }
  assert.deepEqual(await adapterB.recovery.top('*'), { epoch: positioned(a.delivered[0]).position.epoch, offset: 3 })
  assert.equal(await adapterB.recovery.top('r:nowhere'), null)
  assert.equal(adapterA.stats?.().published, 3)
  assert.equal(adapterA.stats?.().received, 3)
  assert.equal(adapterA.stats?.().gaps, 0)
})

test('a broadcast to several rooms is recorded once per room, each copy with via', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const a = fakeNode()
  const adapter = await started(t, { url, prefix }, a)
  await adapter.watch?.('room', 'x')
  await adapter.watch?.('room', 'y')
  adapter.recovery.record(toRoom('first', 'x'))
  adapter.recovery.record(toRoom('both', 'x', 'y'))
  await eventually(() => a.delivered.length === 3, 3000, 'three deliveries')
  const copies = a.delivered.map(positioned).filter(envelope => envelope.payload.toString() === 'both')
  assert.deepEqual(copies.map(envelope => [envelope.kind === 'broadcast' ? envelope.via : '', envelope.position.stream, envelope.position.offset]).sort(),
    [['x', 'r:x', 2], ['y', 'r:y', 1]])
  // One publish, one ordinal for its copies.
  assert.deepEqual(copies.map(envelope => envelope.origin.ordinal), [2, 2])
  const read = await adapter.recovery.read('r:y', null)
  assert.ok(read.ok)
  assert.equal(read.entries.length, 1)
  const entry = read.entries[0]!
  // As it was delivered: this room's copy.
  assert.equal(entry.envelope.kind === 'broadcast' ? entry.envelope.via : 'none', 'y')
  assert.deepEqual(entry.envelope.kind === 'broadcast' ? entry.envelope.rooms : [], ['x', 'y'])
})

test('read gives what came after a position, or says why it cannot: epoch, trimmed, limit', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const a = fakeNode()
  const adapter = await started(t, { url, prefix }, a, { maxDisconnection: 5000, maxMessages: 5 })
  const store = adapter.recovery
  await adapter.watch?.('room', 'r')

  // Nothing yet: from null is fine, from a position is another epoch.
  assert.deepEqual(await store.read('r:r', null), { ok: true, entries: [], top: null })
  assert.deepEqual(await store.read('r:r', { epoch: 'gone', offset: 2 }), { ok: false, reason: 'epoch' })

  for (let i = 1; i <= 4; i++) store.record(toRoom(`m${i}`, 'r'))
  await eventually(() => a.delivered.length === 4, 3000, 'four deliveries')
  const epoch = positioned(a.delivered[0]).position.epoch

  const fromStart = await store.read('r:r', null)
  assert.ok(fromStart.ok)
  assert.deepEqual(fromStart.entries.map(entry => [entry.offset, entry.envelope.payload.toString()]), [[1, 'm1'], [2, 'm2'], [3, 'm3'], [4, 'm4']])
  assert.deepEqual(fromStart.top, { epoch, offset: 4 })
  assert.equal(fromStart.entries[0]!.origin.node, a.nodeId)
  assert.equal(fromStart.entries[0]!.origin.ordinal, 1)
  assert.ok(Math.abs(fromStart.entries[0]!.origin.publishedAt - Date.now()) < 5000)

  const after2 = await store.read('r:r', { epoch, offset: 2 })
  assert.ok(after2.ok)
  assert.deepEqual(after2.entries.map(entry => entry.offset), [3, 4])
  assert.deepEqual(await store.read('r:r', { epoch, offset: 4 }), { ok: true, entries: [], top: { epoch, offset: 4 } })
  assert.deepEqual(await store.read('r:r', { epoch: 'other', offset: 2 }), { ok: false, reason: 'epoch' })
  // An offset this life never gave.
  assert.deepEqual(await store.read('r:r', { epoch, offset: 5 }), { ok: false, reason: 'epoch' })

  // maxMessages 5: three more make 7, the stream keeps 3..7.
  for (let i = 5; i <= 7; i++) store.record(toRoom(`m${i}`, 'r'))
  await eventually(() => a.delivered.length === 7, 3000, 'seven deliveries')
  const after3 = await store.read('r:r', { epoch, offset: 3 })
  assert.ok(after3.ok)
  assert.deepEqual(after3.entries.map(entry => entry.offset), [4, 5, 6, 7])
  // After 1: six missed, more than maxMessages.
  assert.deepEqual(await store.read('r:r', { epoch, offset: 1 }), { ok: false, reason: 'limit' })
  assert.deepEqual(await store.read('r:r', null), { ok: false, reason: 'limit' })

  // An entry trimmed by other means (a shorter stream) is 'trimmed'.
  const raw = rawClient(t, url)
  await raw.xtrim(`${prefix}:db0:history:room:{r}`, 'MAXLEN', 2)
  assert.deepEqual(await store.read('r:r', { epoch, offset: 3 }), { ok: false, reason: 'trimmed' })
  const after5 = await store.read('r:r', { epoch, offset: 5 })
  assert.ok(after5.ok)
  assert.deepEqual(after5.entries.map(entry => entry.offset), [6, 7])
  assert.deepEqual(after5.top, { epoch, offset: 7 })

  // An entry that is not ours cannot be given: as good as trimmed.
  await raw.xadd(`${prefix}:db0:history:room:{r}`, '8-0', 'x', 'y')
  await raw.hset(`${prefix}:db0:meta:room:{r}`, 'o', 8)
  assert.deepEqual(await store.read('r:r', { epoch, offset: 7 }), { ok: false, reason: 'trimmed' })

  // The meta gone (Redis lost it): a new life, a new epoch, offsets from 1 again.
  await raw.del(`${prefix}:db0:meta:room:{r}`)
  assert.deepEqual(await store.read('r:r', { epoch, offset: 7 }), { ok: false, reason: 'epoch' })
  store.record(toRoom('new life', 'r'))
  await eventually(() => a.delivered.length === 8, 3000, 'the eighth delivery')
  const reborn = positioned(a.delivered[7]).position
  assert.notEqual(reborn.epoch, epoch)
  assert.equal(reborn.offset, 1)
  const afterRebirth = await store.read('r:r', null)
  assert.ok(afterRebirth.ok)
  assert.deepEqual(payloads(afterRebirth.entries.map(entry => entry.envelope)), ['new life'])

  // Keys live 2 × maxDisconnection past the last message.
  const ttl = await raw.pttl(`${prefix}:db0:history:room:{r}`)
  assert.ok(ttl > 9000 && ttl <= 10000, `ttl ${ttl}`)
  await assert.rejects(store.read('nonsense', null), TypeError)
})

test('history is bounded by age too: entries older than 2 × maxDisconnection go as later ones are recorded, at most 2 per record', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const a = fakeNode()
  // Entries live 600 ms at most; the stream keeps up to 100 (the count bound plays no part here).
  const adapter = await started(t, { url, prefix }, a, { maxDisconnection: 300, maxMessages: 100 })
  const store = adapter.recovery
  const raw = rawClient(t, url)
  const key = `${prefix}:db0:history:room:{aged}`
  await adapter.watch?.('room', 'aged')
  const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
  const recordAndWait = async (...names: string[]): Promise<void> => {
    const expected = a.delivered.length + names.length
    for (const name of names) store.record(toRoom(name, 'aged'))
    await eventually(() => a.delivered.length === expected, 3000, `the delivery of ${names.join(', ')}`)
  }
  const offsets = async (): Promise<number[]> => (await raw.xrange(key, '-', '+')).map(([id]) => Number.parseInt(id, 10))

  await recordAndWait('m1', 'm2', 'm3')
  const epoch = positioned(a.delivered[0]).position.epoch
  // Each entry carries its record time (Redis's clock) in field t, before the body.
  const [[, fields]] = await raw.xrange(key, '-', '+', 'COUNT', 1) as [[string, string[]]]
  assert.equal(fields[0], 't')
  const [seconds, micros] = await raw.time() as unknown as [string, string]
  const redisNow = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
  assert.ok(Math.abs(Number(fields[1]) - redisNow) < 1000, `t ${fields[1]}, Redis now ${redisNow}`)

  await sleep(350)
  await recordAndWait('m4')
  // m1..m3 are 350 ms old: young enough.
  assert.deepEqual(await offsets(), [1, 2, 3, 4])
  await sleep(300)
  // m1..m3 are now past 600 ms, m4 is not: this record removes two of them, the next one the third.
  await recordAndWait('m5')
  assert.deepEqual(await offsets(), [3, 4, 5])
  await recordAndWait('m6')
  assert.deepEqual(await offsets(), [4, 5, 6])
  await recordAndWait('m7')
  assert.deepEqual(await offsets(), [4, 5, 6, 7])

  // Reads: from before the entries that aged out is 'trimmed'; from what is left, all of it.
  assert.deepEqual(await store.read('r:aged', null), { ok: false, reason: 'trimmed' })
  assert.deepEqual(await store.read('r:aged', { epoch, offset: 1 }), { ok: false, reason: 'trimmed' })
  assert.deepEqual(await store.read('r:aged', { epoch, offset: 2 }), { ok: false, reason: 'trimmed' })
  const after3 = await store.read('r:aged', { epoch, offset: 3 })
  assert.ok(after3.ok)
  assert.deepEqual(payloads(after3.entries.map(entry => entry.envelope)), ['m4', 'm5', 'm6', 'm7'])
  assert.deepEqual(after3.top, { epoch, offset: 7 })
  assert.deepEqual(await store.top('r:aged'), { epoch, offset: 7 })

  // An entry without t (not ours) at the head stops the removal behind it; nothing fails.
  // (Records every 300-350 ms: a stream nobody records to for 600 ms expires whole.)
  await raw.xtrim(key, 'MINID', '7')
  await raw.xadd(key, '1000-0', 'x', 'y')
  await raw.hset(`${prefix}:db0:meta:room:{aged}`, 'o', 1000)
  await sleep(350)
  await recordAndWait('m1001')
  assert.deepEqual(await offsets(), [7, 1000, 1001])
  await sleep(300)
  await recordAndWait('m1002')
  assert.deepEqual(await offsets(), [1000, 1001, 1002])
  await sleep(350)
  await recordAndWait('m1003')
  await sleep(300)
  await recordAndWait('m1004')
  assert.deepEqual(await offsets(), [1000, 1001, 1002, 1003, 1004])
  assert.equal(positioned(a.delivered.at(-1)).position.epoch, epoch)
  assert.equal(adapter.stats?.().gaps, 0)

  // A client's stream too.
  const id = randomUUID()
  await adapter.watch?.('client', id)
  await store.createSession(id, session)
  const clientKey = `${prefix}:db0:history:client:{${id}}`
  const send = async (payload: string): Promise<void> => {
    const expected = a.delivered.length + 1
    store.record({ kind: 'send', to: id, payload: Buffer.from(payload), binary: false })
    await eventually(() => a.delivered.length === expected, 3000, `the delivery of ${payload}`)
  }
  await send('c1')
  await sleep(350)
  // The session lives 600 ms past its last renewal.
  store.touchSessions([id], [])
  await send('c2')
  await sleep(300)
  await send('c3')
  assert.deepEqual((await raw.xrange(clientKey, '-', '+')).map(([entryId]) => entryId), ['2-0', '3-0'])
})

test('a client\'s stream records only while it has a session', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const a = fakeNode()
  const adapter = await started(t, { url, prefix }, a)
  const store = adapter.recovery
  const id = randomUUID()
  await adapter.watch?.('client', id)

  store.record({ kind: 'send', to: id, payload: Buffer.from('before'), binary: true })
  await eventually(() => a.delivered.length === 1, 3000, 'the unrecorded send')
  assert.equal('position' in a.delivered[0]!, false)
  assert.deepEqual(a.delivered[0], { kind: 'send', to: id, payload: Buffer.from('before'), binary: true })
  assert.equal(await store.top(`c:${id}`), null)

  await store.createSession(id, session)
  const top = await store.top(`c:${id}`)
  assert.ok(top !== null)
  assert.equal(top.offset, 0)
  store.record({ kind: 'send', to: id, payload: Buffer.from('after'), binary: false })
  await eventually(() => a.delivered.length === 2, 3000, 'the recorded send')
  assert.deepEqual(positioned(a.delivered[1]).position, { stream: `c:${id}`, epoch: top.epoch, offset: 1 })
  const read = await store.read(`c:${id}`, top)
  assert.ok(read.ok)
  assert.deepEqual(read.entries.map(entry => entry.envelope), [{ kind: 'send', to: id, payload: Buffer.from('after'), binary: false }])

  // A new session for the same id starts a new life of its stream.
  await store.createSession(id, session)
  assert.deepEqual(await store.read(`c:${id}`, top), { ok: false, reason: 'epoch' })
})

test('sessions: create, read, claim once, join and leave, touch and end', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const a = fakeNode()
  const adapter = await started(t, { url, prefix }, a, { maxDisconnection: 1000, maxMessages: 10 })
  const store = adapter.recovery
  const raw = rawClient(t, url)
  const id = randomUUID()
  const key = `${prefix}:db0:session:{${id}}`

  assert.equal(await store.readSession(id), undefined)
  await store.createSession(id, session)
  assert.deepEqual(await store.readSession(id), session)
  const ttl = await raw.pttl(key)
  assert.ok(ttl > 1500 && ttl <= 2000, `ttl ${ttl}`)

  // Of two claims with one token, one wins.
  const claims = await Promise.all([store.claimSession(id, 'token-1', 'token-2'), store.claimSession(id, 'token-1', 'token-3')])
  assert.equal(claims.filter(claim => claim !== undefined).length, 1)
  assert.deepEqual(claims.find(claim => claim !== undefined), session)
  const winner = claims[0] !== undefined ? 'token-2' : 'token-3'
  assert.equal((await store.readSession(id))?.token, winner)
  assert.equal(await store.claimSession(id, 'token-1', 'token-4'), undefined)
  assert.equal(await store.claimSession(randomUUID(), 'token-1', 'token-4'), undefined)

  store.joinSession(id, 'kitchen', { epoch: 'e3', offset: 1 })
  store.leaveSession(id, 'lobby')
  // A join to a session that is gone does not bring it back.
  const gone = randomUUID()
  store.joinSession(gone, 'kitchen', null)
  await eventually(async () => (await store.readSession(id))?.rooms.kitchen !== undefined, 2000, 'the join')
  assert.deepEqual((await store.readSession(id))?.rooms, { kitchen: { epoch: 'e3', offset: 1 }, empty: null })
  assert.equal(await raw.exists(`${prefix}:db0:session:{${gone}}`), 0)

  // Touch renews the session and the room's meta.
  const roomMeta = `${prefix}:db0:meta:room:{kitchen}`
  await raw.hset(roomMeta, 'e', 'e3', 'o', 1)
  await raw.pexpire(key, 100)
  store.touchSessions([id], ['kitchen'])
  await eventually(async () => await raw.pttl(key) > 1000 && await raw.pttl(roomMeta) > 1000, 2000, 'the touch')

  // End with a stale token does nothing; with the current one, maxDisconnection more.
  store.endSession(id, 'token-1')
  store.endSession(randomUUID(), 'x')
  await new Promise(resolve => setTimeout(resolve, 100))
  assert.ok(await raw.pttl(key) > 1500)
  store.endSession(id, winner)
  await eventually(async () => await raw.pttl(key) <= 1000, 2000, 'the end')
  assert.equal(adapter.stats?.().recoveryFailed, 0)

  // A write that Redis refuses is counted, never thrown; a read that it refuses rejects.
  const wrong = randomUUID()
  await raw.set(`${prefix}:db0:session:{${wrong}}`, 'not a hash')
  store.joinSession(wrong, 'room', null)
  await eventually(() => adapter.stats?.().recoveryFailed === 1, 2000, 'the failed join counted')
  await assert.rejects(store.readSession(wrong), (error: Error & { code?: string }) =>
    error.code === 'FST_WS_HUB_REDIS_UNAVAILABLE' && /WRONGTYPE/.test(String(error.cause)))
})

test('record counts against maxPendingBytes as publish does', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const a = fakeNode()
  const adapter = await started(t, { url, prefix: uniquePrefix(), maxPendingBytes: 4096 }, a)
  assert.equal(adapter.recovery.record(toRoom('x'.repeat(3000), 'r')), true)
  assert.equal(adapter.recovery.record(toRoom('x'.repeat(3000), 'r', 's')), false)
  assert.equal(adapter.stats?.().dropped, 2)
  await eventually(() => adapter.stats?.().published === 1, 2000, 'the first one recorded')
})

test('release: true at once with no holder; the holder is asked, and false while it keeps the client', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const holding: { adapter?: Adapter } = {}
  const dead = randomUUID()
  const alive = randomUUID()
  // The holder lets `dead` go when asked (its socket did not answer), keeps `alive`.
  const holder = fakeNode((clientId) => {
    if (clientId === dead) holding.adapter?.unwatch?.('client', clientId)
  })
  const asker = fakeNode()
  const holderAdapter = await started(t, { url, prefix }, holder)
  holding.adapter = holderAdapter
  const askerAdapter = await started(t, { url, prefix }, asker)

  const start = Date.now()
  assert.equal(await askerAdapter.recovery.release(randomUUID(), 1000), true)
  assert.ok(Date.now() - start < 500)

  await holderAdapter.watch?.('client', dead)
  await holderAdapter.watch?.('client', alive)
  assert.equal(await askerAdapter.recovery.release(dead, 2000), true)
  assert.deepEqual(holder.released, [dead])

  const before = Date.now()
  assert.equal(await askerAdapter.recovery.release(alive, 300), false)
  assert.ok(Date.now() - before >= 290)
  assert.ok(holder.released.filter(id => id === alive).length >= 2, 'asked again while it holds it')

  // The holder asking itself: its own control message reaches it too.
  holder.released.length = 0
  assert.equal(await holderAdapter.recovery.release(alive, 200), false)
  assert.ok(holder.released.includes(alive))
  // Nothing delivered, nothing malformed.
  assert.equal(holder.delivered.length, 0)
  assert.equal(holderAdapter.stats?.().malformed, 0)
})

test('record is refused while Redis is unreachable, and counted as dropped', async (t) => {
  const prefix = uniquePrefix()
  const a = fakeNode()
  const adapter = redisAdapter({ url: 'redis://127.0.0.1:1', prefix })
  adapter.recovery.configure({ maxDisconnection: 1000, maxMessages: 10 })
  // Not started: nothing to count with yet.
  assert.equal(adapter.recovery.record(text('early')), false)
  adapter.recovery.joinSession('x', 'room', null)
  await assert.rejects(adapter.recovery.readSession('x'), { code: 'FST_WS_HUB_REDIS_UNAVAILABLE' })
  await adapter.start(a)
  t.after(() => adapter.close())
  assert.equal(adapter.recovery.record(toRoom('x', 'a', 'b')), false)
  assert.equal(adapter.stats?.().dropped, 2)
  adapter.recovery.touchSessions(['x'], [])
  assert.equal(adapter.stats?.().recoveryFailed, 1)
  await assert.rejects(adapter.recovery.top('*'), { code: 'FST_WS_HUB_REDIS_UNAVAILABLE' })
  assert.equal(await adapter.recovery.release('x', 100), false)
})

test('cluster: record and read on rooms of different shards, and everyone\'s stream on the slot of its channel', async (t) => {
  if (!clusterAvailable()) {
    t.skip('a Redis Cluster test needs redis-server and redis-cli on PATH')
    return
  }
  const cluster = await startRedisCluster(t, { masters: 3 })
  const prefix = uniquePrefix()
  // Rooms spread over the three masters.
  const byMaster = new Map<number, string>()
  for (let i = 0; byMaster.size < 3 && i < 100; i++) {
    const room = `room-${i}`
    const master = await cluster.masterFor(`${prefix}:db0:room:{${room}}`)
    if (!byMaster.has(master)) byMaster.set(master, room)
  }
  const rooms = [...byMaster.values()]
  assert.equal(rooms.length, 3)
  const a = fakeNode()
  const b = fakeNode()
  const adapterA = await started(t, { cluster: cluster.startupNodes, prefix }, a)
  const adapterB = await started(t, { cluster: cluster.startupNodes, prefix }, b)
  for (const room of rooms) await adapterB.watch?.('room', room)

  for (let i = 1; i <= 3; i++) {
    for (const room of rooms) assert.equal(adapterA.recovery.record(toRoom(`${room} ${i}`, room)), true)
  }
  assert.equal(adapterA.recovery.record(text('everyone')), true)
  assert.equal(adapterA.recovery.record(toRoom('spread', ...rooms)), true)
  await eventually(() => b.delivered.length === 13, 5000, 'thirteen deliveries at b')
  for (const room of rooms) {
    const mine = b.delivered.map(positioned).filter(envelope => envelope.position.stream === `r:${room}`)
    assert.deepEqual(mine.map(envelope => envelope.position.offset), [1, 2, 3, 4])
    const read = await adapterB.recovery.read(`r:${room}`, { epoch: mine[0]!.position.epoch, offset: 1 })
    assert.ok(read.ok)
    assert.deepEqual(payloads(read.entries.map(entry => entry.envelope)), [`${room} 2`, `${room} 3`, 'spread'])
  }
  const all = await adapterA.recovery.read('*', null)
  assert.ok(all.ok)
  assert.deepEqual(payloads(all.entries.map(entry => entry.envelope)), ['everyone'])

  const admin = cluster.client() as unknown as Redis
  const slot = (key: string): Promise<unknown> => admin.call('CLUSTER', 'KEYSLOT', key)
  assert.equal(await slot(`${prefix}:db0:history:all:{${prefix}:db0:all}`), await slot(`${prefix}:db0:all`))
  assert.equal(await slot(`${prefix}:db0:meta:all:{${prefix}:db0:all}`), await slot(`${prefix}:db0:all`))

  // Sessions and release on a cluster too.
  const id = randomUUID()
  await adapterB.watch?.('client', id)
  await adapterA.recovery.createSession(id, session)
  adapterA.recovery.record({ kind: 'send', to: id, payload: Buffer.from('direct'), binary: false })
  await eventually(() => b.delivered.length === 14, 5000, 'the send')
  assert.equal(positioned(b.delivered[13]).position.offset, 1)
  assert.equal(await adapterA.recovery.release(id, 200), false)
  assert.ok(b.released.includes(id))
  assert.equal(await adapterA.recovery.release(randomUUID(), 200), true)
  adapterA.recovery.joinSession(id, 'later', null)
  adapterA.recovery.touchSessions([id], rooms)
  await eventually(async () => (await adapterB.recovery.readSession(id))?.rooms.later === null, 3000, 'the join on a cluster')
  assert.equal(adapterA.stats?.().recoveryFailed, 0)
})

/** A recorded message as the record script publishes it (see lib/adapters/redis/record-codec.ts). */
function recordedMessage (position: string, header: string, sequence: number, payload = 'x'): Buffer {
  const head = Buffer.from(header)
  const body = Buffer.alloc(22)
  body.set([1, 0])
  body.writeUInt32BE(head.length, 2)
  body.writeUInt32BE(sequence, 6)
  // Published an hour ago: recorded messages are never dropped as late.
  body.writeUIntBE(Date.now() - 3_600_000, 10, 6)
  body.writeUIntBE(sequence, 16, 6)
  return Buffer.concat([Buffer.from([0x77, 0x72, position.length]), Buffer.from(position, 'latin1'), body, head, Buffer.from(payload)])
}

test('recorded messages: gaps in their numbers are counted, malformed ones ignored, late ones delivered', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const a = fakeNode()
  const adapter = await started(t, { url, prefix }, a)
  const raw = rawClient(t, url)
  const channel = `${prefix}:db0:all`
  const header = '["elsewhere",null,null]'
  await raw.publish(channel, recordedMessage('ep:1', header, 1, 'one'))
  await raw.publish(channel, recordedMessage('ep:3', header, 3, 'three'))
  const garbage = [
    Buffer.from([0x77, 0x72, 9, 0x41]),
    recordedMessage('ep:x', header, 4),
    recordedMessage('ep:0', header, 5),
    recordedMessage('', '["n",7]', 6),
    Buffer.from([0x77, 0x63, 9, 0x41]),
    Buffer.from([0x77, 0x63, 1, 0x41])
  ]
  for (const message of garbage) await raw.publish(channel, message)
  await eventually(() => adapter.stats?.().malformed === garbage.length, 2000, 'the garbage counted')
  assert.deepEqual(payloads(a.delivered), ['one', 'three'])
  assert.deepEqual(a.delivered.map(positioned).map(envelope => [envelope.position.stream, envelope.position.offset]), [['*', 1], ['*', 3]])
  assert.equal(adapter.stats?.().late, 0)
  assert.equal(adapter.stats?.().gaps, 1)
  assert.equal(adapter.stats?.().lost, 1)
  assert.deepEqual(a.released, [])
})
