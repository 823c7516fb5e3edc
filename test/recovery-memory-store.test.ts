// The memory adapter's history store on its own, with a node that records what it is given: the
// same contract as the Redis store (test/redis-recovery-store.test.ts), and its own bounds.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { MemoryBus, memoryAdapter, type HubEnvelope, type HubNode, type RecoveryStore } from '../dist/index.js'
import { sleep } from './helpers.js'

/** A hub node that keeps what the adapter delivers to it. */
function fakeNode (nodeId: string, held = new Set<string>()): HubNode & { delivered: HubEnvelope[], released: string[] } {
  const delivered: HubEnvelope[] = []
  const released: string[] = []
  return {
    nodeId,
    delivered,
    released,
    deliver (envelope) { delivered.push(envelope) },
    onlineCount: () => 0,
    roomSize: () => 0,
    rooms: new Map(),
    membershipVersion: 0,
    log: { warn () {}, info () {}, debug () {}, error () {} } as unknown as HubNode['log'],
    release (clientId) {
      released.push(clientId)
      held.delete(clientId)
    },
    holds: clientId => held.has(clientId),
    handleNodeMessage: () => null,
    presenceLapsed () {}
  }
}

function event (n: number): Buffer {
  return Buffer.from(JSON.stringify({ type: 'tick', data: { n } }))
}

test('a send to a client without a session is delivered to every node unrecorded; one with a session is recorded', async () => {
  const bus = new MemoryBus()
  const a = fakeNode('a')
  const b = fakeNode('b')
  const adapterA = memoryAdapter({ bus })
  const adapterB = memoryAdapter({ bus })
  adapterA.start(a)
  adapterB.start(b)
  const store = adapterA.recovery as RecoveryStore
  store.configure({ maxDisconnection: 1000, maxMessages: 10 })
  assert.equal(store.record({ kind: 'send', to: 'nobody', payload: event(1), binary: false }), true)
  assert.deepEqual([a.delivered.length, b.delivered.length], [1, 1])
  assert.equal('position' in (b.delivered[0] as object), false)
  await store.createSession('c1', { token: 't', params: 'p', all: null, rooms: {} })
  store.record({ kind: 'send', to: 'c1', payload: event(2), binary: false })
  assert.deepEqual((b.delivered[1] as { position?: { stream: string, offset: number } }).position?.stream, 'c:c1')
  assert.equal((await store.top('c:c1'))?.offset, 1)
  // A store not started cannot record.
  assert.equal((memoryAdapter().recovery as RecoveryStore).record({ kind: 'broadcast', payload: event(3), binary: false }), false)
})

test('history is bounded by age; rooms unused twice maxDisconnection are forgotten; expired sessions are swept', async () => {
  const node = fakeNode('a')
  const adapter = memoryAdapter()
  adapter.start(node)
  const store = adapter.recovery as RecoveryStore
  store.configure({ maxDisconnection: 50, maxMessages: 5_000 })
  store.record({ kind: 'broadcast', payload: event(1), binary: false, rooms: ['old'] })
  store.record({ kind: 'broadcast', payload: event(1), binary: false, rooms: ['kept'] })
  const kept = await store.top('r:kept')
  await sleep(60)
  // A node with members keeps its room alive.
  store.touchSessions([], ['kept'])
  await sleep(60)
  store.touchSessions([], ['kept'])
  // Old entries go as new ones come; the read from before them is 'trimmed'.
  for (let n = 2; n <= 1100; n++) store.record({ kind: 'broadcast', payload: event(n), binary: false })
  const read = await store.read('*', null)
  assert.deepEqual(read.ok ? 'ok' : read.reason, 'ok', 'the entries are young')
  await sleep(110)
  store.record({ kind: 'broadcast', payload: event(1101), binary: false })
  const late = await store.read('*', null)
  assert.deepEqual(late.ok ? 'ok' : late.reason, 'trimmed')
  // 'old' was neither published to nor touched for 2 x maxDisconnection: forgotten (a new epoch if used again).
  assert.equal(await store.top('r:old'), null)
  assert.deepEqual(await store.top('r:kept'), kept)

  for (let i = 0; i < 1024; i++) await store.createSession(`s${i}`, { token: 't', params: 'p', all: null, rooms: {} })
  await sleep(110)
  for (let i = 0; i < 1024; i++) await store.createSession(`n${i}`, { token: 't', params: 'p', all: null, rooms: {} })
  assert.equal(await store.readSession('s0'), undefined)
  assert.notEqual(await store.readSession('n0'), undefined)
})

test('release asks every node and waits for the holder to let go, or gives up', async () => {
  const bus = new MemoryBus()
  const held = new Set(['c1'])
  const a = fakeNode('a', held)
  const stubborn = new Set(['c2'])
  const b = { ...fakeNode('b'), holds: (id: string) => stubborn.has(id), release () {} }
  const adapterA = memoryAdapter({ bus })
  memoryAdapter({ bus }).start(b)
  adapterA.start(a)
  const store = adapterA.recovery as RecoveryStore
  assert.equal(await store.release('c1', 500), true)
  assert.deepEqual(a.released, ['c1'])
  const started = Date.now()
  assert.equal(await store.release('c2', 100), false)
  assert.ok(Date.now() - started >= 100)
})
