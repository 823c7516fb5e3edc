// Session recovery on a node that misses recorded events: Redis cuts the node's subscription (its
// output buffer for it passed the pub/sub limit while the node was busy), the events published
// meanwhile never reach the node, and its client, which has a session, still gets every event
// exactly once and in order: the hub closes it 1013 at the first skipped offset, and the client
// library resumes from its own position, which the history covers.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import WebSocket from 'ws'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import type { WebSocketConstructor } from '../dist/client/index.js'
import { waitFor } from './helpers.js'
import { spawnScript, uniquePrefix, useRedisServer, type RedisServer } from './redis-env.js'
import { checkTicks, checkTicksPerStream, sessions, startRecoveryHub, tickClient } from './recovery-env.js'

const RECOVERY = { maxDisconnection: 30_000, maxMessages: 50_000 }
/** Ms this process blocks its event loop, and the publisher sends big ticks meanwhile. */
const BLOCK_MS = 1000

/**
 * A publishing hub with recovery, in a process of its own (so that this process can block its
 * own event loop while it publishes). Env: REDIS_URL, PREFIX, RECOVERY (JSON). Prints {} when
 * ready; on a stdin line {"room":R,"to":ID} it publishes 3 KB ticks (from 'p', 10 every 5 ms) to
 * everyone, the room and the client in turn, until the line "stop", then prints
 * { ticks, published, dropped } once Redis has answered for every one.
 */
const publisherScript = `
import Fastify from 'fastify'
import { createInterface } from 'node:readline'
import fastifyWsHub, { Type } from './dist/index.js'
import { redisAdapter } from './dist/adapters/redis/index.js'

const app = Fastify()
await app.register(fastifyWsHub, {
  heartbeat: false,
  recovery: JSON.parse(process.env.RECOVERY),
  adapter: redisAdapter({ url: process.env.REDIS_URL, prefix: process.env.PREFIX })
})
app.hub.route({ url: '/ticks', events: { tick: Type.Object({ n: Type.Integer(), from: Type.String(), to: Type.String() }) } })
await app.ready()
const small = ' '.repeat(3000)
const big = ' '.repeat(30000)
let pad = small
let publishing = false
let n = 0
async function flow (room, to) {
  while (publishing) {
    for (let i = 0; i < 10; i++) {
      n++
      if (n % 3 === 0) app.hub.broadcastEvent('tick', { n, from: 'p', to: '*' + pad })
      else if (n % 3 === 1) app.hub.broadcastEvent('tick', { n, from: 'p', to: room + pad }, { room })
      else app.hub.sendEventTo(to, 'tick', { n, from: 'p', to: to + pad })
    }
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}
createInterface({ input: process.stdin }).on('line', async (line) => {
  if (line === 'burst') {
    pad = big
    setTimeout(() => { pad = small }, Number(process.env.BURST_MS))
    return
  }
  if (line === 'stop') {
    publishing = false
    const stats = () => app.hub.stats()
    while (stats()['adapter.published'] + stats()['adapter.dropped'] < n) await new Promise(resolve => setTimeout(resolve, 10))
    process.stdout.write(JSON.stringify({ ticks: n, published: stats()['adapter.published'], dropped: stats()['adapter.dropped'] }) + '\\n')
    await app.close()
    return
  }
  const { room, to } = JSON.parse(line)
  publishing = true
  flow(room, to)
})
process.stdout.write('{}\\n')
`

test('a node whose subscription Redis cuts: its client is closed 1013 at the skipped offset, resumes, and gets every event exactly once, in order', async (t) => {
  // A Redis of the test's own, which cuts a subscriber at 128 KiB of output waiting for it.
  const server = await useRedisServer(t, undefined, ['--client-output-buffer-limit', 'pubsub 128kb 0 0']) as RedisServer | undefined
  if (server === undefined) return
  const prefix = uniquePrefix()
  // Room enough for the client to take a replay of the whole burst in one go: it is closed for
  // missing events, never for falling behind.
  const receiver = await startRecoveryHub(t, {
    adapter: redisAdapter({ url: server.url, prefix }), recovery: RECOVERY, maxBufferedBytes: 128 * 1024 * 1024, maxBurstBytes: 128 * 1024 * 1024
  })
  const stat = (name: string): number => (receiver.app.hub.stats() as unknown as Record<string, number>)[name] ?? Number.NaN

  // How each of the client's sockets ended.
  const closes: string[] = []
  class WatchedWebSocket extends WebSocket {
    constructor (url: string) {
      super(url)
      this.on('close', (code, reason) => closes.push(`${code} ${reason.toString()}`))
    }
  }
  const { client, log } = tickClient(t, receiver.url, { WebSocket: WatchedWebSocket as unknown as WebSocketConstructor })
  await sessions(log, 1)
  const id = log.sessions[0]?.id as string
  await client.request('join', { room: 'lobby' })

  const publisher = spawnScript(t, publisherScript, { REDIS_URL: server.url, PREFIX: prefix, RECOVERY: JSON.stringify(RECOVERY), BURST_MS: String(BLOCK_MS) }, 'pipe')
  await publisher.nextLine()
  publisher.child.stdin!.write(JSON.stringify({ room: 'lobby', to: id }) + '\n')
  await waitFor(() => log.ticks.length > 150, 5000, 'the flow to start')
  assert.equal(checkTicks(log, {}), '', 'live ticks in order before the cut')

  // Busy for a second: Redis's output buffer for this node's subscription passes its limit, and
  // Redis closes the connection; what is published until the node has subscribed again is lost to it.
  publisher.child.stdin!.write('burst\n')
  const busyUntil = Date.now() + BLOCK_MS
  while (Date.now() < busyUntil) { /* this node falls behind */ }
  await waitFor(() => stat('adapter.gaps') > 0, 10_000, 'the gap to be seen after the resubscription')
  await sessions(log, 2, 10_000)
  // Live ticks go on for a while after the resume.
  await new Promise(resolve => setTimeout(resolve, 500))
  publisher.child.stdin!.write('stop\n')
  const { ticks, published, dropped } = await publisher.nextLine<{ ticks: number, published: number, dropped: number }>()
  assert.equal(dropped, 0)
  assert.equal(published, ticks)

  await waitFor(() => log.ticks.length >= ticks, 20_000, `${ticks} ticks (got ${log.ticks.length})`)
  await new Promise(resolve => setTimeout(resolve, 200))
  const [lost, gaps, received] = [stat('adapter.lost'), stat('adapter.gaps'), stat('adapter.received')]
  t.diagnostic(`published ${ticks}; the node received ${received} and lost ${lost} in ${gaps} gap(s); ` +
    `the client had ${log.sessions.length} sessions, its sockets closed with ${JSON.stringify(closes)}`)
  // The cut happened: the node missed recorded events on its subscription, and its client was
  // closed for it (lib/hub-core.ts #deliverRecorded), not for falling behind.
  assert.ok(lost > 0, `lost ${lost}`)
  assert.ok(gaps > 0, `gaps ${gaps}`)
  assert.equal(stat('slowConsumerCloses'), 0)
  assert.equal(closes[0], '1013 missed events: resume to catch up')
  assert.ok(closes.every(close => close.startsWith('1013 missed events')), JSON.stringify(closes))
  // Each later session is the same one, recovered, one per close.
  assert.equal(log.sessions.length, closes.length + 1)
  assert.deepEqual(log.sessions.slice(1), closes.map(() => ({ id, recovered: true })))
  assert.equal(receiver.app.hub.clients.get(id)?.rooms.has('lobby'), true)
  // Nothing lost: every tick came, the ones the node missed included.
  const seen = new Set(log.ticks.map(tick => tick.n))
  const missing = Array.from({ length: ticks }, (_, index) => index + 1).filter(n => !seen.has(n))
  assert.deepEqual(missing, [])

  // Exactly once, and in the order sent, across streams too: the resume reads the history while
  // the node's subscription may still be working through its backlog; what it brings later is
  // not given again (the session's floors), and a PING on the subscriber after the reads makes
  // what the history gave and what comes live meet in one replay order.
  assert.equal(checkTicksPerStream(log, { p: ticks }), '')
  assert.equal(checkTicks(log, { p: ticks }), '')
})
