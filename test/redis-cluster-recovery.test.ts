// Session recovery on a Redis Cluster: each room's history lives on the shard of its room (the
// stream, its meta hash and its channel share a hash slot), so a client in rooms of several
// shards resumes from all of them.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import { startCutProxy } from './cut-proxy.js'
import { sleep, waitFor } from './helpers.js'
import { clusterAvailable, startRedisCluster } from './redis-cluster-env.js'
import { uniquePrefix } from './redis-env.js'
import { checkTicksPerStream, sessions, startRecoveryHub, tickClient, ticksOf } from './recovery-env.js'

const ROOMS = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6']

test('on 3 masters: a client in rooms of every shard resumes on the other node with what it missed, once each, in order per stream', { skip: clusterAvailable() ? false : 'a Redis Cluster test needs redis-server and redis-cli on PATH' }, async (t) => {
  const cluster = await startRedisCluster(t, { masters: 3 })
  const prefix = uniquePrefix()
  const options = { recovery: { maxDisconnection: 30_000, maxMessages: 5_000 } }
  const a = await startRecoveryHub(t, { ...options, adapter: redisAdapter({ cluster: cluster.startupNodes, prefix }) })
  const b = await startRecoveryHub(t, { ...options, adapter: redisAdapter({ cluster: cluster.startupNodes, prefix }) })
  const proxy = await startCutProxy(a.port)
  t.after(() => proxy.close())
  const { client, log } = tickClient(t, `ws://127.0.0.1:${proxy.port}/ticks`)
  await sessions(log, 1)
  const id = log.sessions[0]?.id as string
  for (const room of ROOMS) await client.request('join', { room })

  // The rooms' histories are spread over the masters.
  const masters = new Set<number>()
  for (const room of ROOMS) masters.add(await cluster.masterFor(`x{${room}}`))
  assert.ok(masters.size >= 2, `rooms on ${masters.size} master(s)`)

  const counts: Record<string, number> = { a: 0, b: 0 }
  const publish = (from: 'a' | 'b'): void => {
    const hub = ticksOf(from === 'a' ? a.app : b.app)
    const n = (counts[from] ?? 0) + 1
    counts[from] = n
    const kind = n % (ROOMS.length + 2)
    if (kind === ROOMS.length) hub.broadcastEvent('tick', { n, from, to: '*' })
    else if (kind === ROOMS.length + 1) hub.sendEventTo(id, 'tick', { n, from, to: id })
    else hub.broadcastEvent('tick', { n, from, to: ROOMS[kind] as string }, { room: ROOMS[kind] as string })
  }
  proxy.cut()
  for (let batch = 0; batch < 20; batch++) {
    for (let i = 0; i < 15; i++) { publish('a'); publish('b') }
    await sleep(50)
  }
  proxy.retarget(b.port)
  proxy.restore()
  await sessions(log, 2, 10_000)
  assert.deepEqual(log.sessions[1], { id, recovered: true })
  for (let i = 0; i < 20; i++) { publish('a'); publish('b') }
  const total = (counts.a as number) + (counts.b as number)
  await waitFor(() => log.ticks.length >= total, 10_000, `${total} ticks (got ${log.ticks.length})`)
  await sleep(100)
  assert.equal(checkTicksPerStream(log, counts), '')
  assert.deepEqual([...b.app.hub.clients.get(id)?.rooms ?? []].sort(), ROOMS)
})
