// Session recovery across two nodes on Redis: a client whose link fails (not a clean close), or
// whose node is SIGKILLed, resumes on the other node with every event sent meanwhile from both
// nodes, exactly once, in each publisher's order, then live events.
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import { startCutProxy } from './cut-proxy.js'
import { sleep, waitFor } from './helpers.js'
import { spawnScript, uniquePrefix, useRedis, useRedisServer, type RedisServer } from './redis-env.js'
import { checkTicks, rawSession, sessions, startRecoveryHub, tickClient, ticksOf, type TickLog } from './recovery-env.js'

/** How long the link stays down, as the issue asks. */
const DOWN_MS = 5000

/** A node of the tick route with recovery on Redis, in this process. */
async function node (t: TestContext, url: string, prefix: string): ReturnType<typeof startRecoveryHub> {
  return await startRecoveryHub(t, { adapter: redisAdapter({ url, prefix }), recovery: { maxDisconnection: 30_000, maxMessages: 5_000 } })
}

/**
 * Publishes `count` ticks from a node, spread over `ms`, to everyone, the room and the client in
 * turn, numbered per publisher (`from`) from `start`.
 * @returns the last number published
 */
async function publishOver (publish: (n: number, to: 'all' | 'room' | 'client') => void, start: number, count: number, ms: number): Promise<number> {
  const batches = 50
  let n = start
  for (let batch = 0; batch < batches; batch++) {
    for (let i = 0; i < count / batches; i++) {
      n++
      publish(n, n % 3 === 0 ? 'all' : n % 3 === 1 ? 'room' : 'client')
    }
    await sleep(ms / batches)
  }
  return n
}

function tickPublisher (app: Parameters<typeof ticksOf>[0], from: string, room: string, clientId: string): (n: number, to: 'all' | 'room' | 'client') => void {
  const hub = ticksOf(app)
  return (n, to) => {
    if (to === 'all') hub.broadcastEvent('tick', { n, from, to: '*' })
    else if (to === 'room') hub.broadcastEvent('tick', { n, from, to: room }, { room })
    else hub.sendEventTo(clientId, 'tick', { n, from, to: clientId })
  }
}

/** Waits until every publisher's ticks arrived, then checks them. */
async function allArrived (log: TickLog, expected: Record<string, number>, timeoutMs = 10_000): Promise<void> {
  const total = Object.values(expected).reduce((sum, count) => sum + count, 0)
  await waitFor(() => log.ticks.length >= total, timeoutMs, `${total} ticks (got ${log.ticks.length})`)
  await sleep(100)
  assert.equal(checkTicks(log, expected), '')
}

test('a link that fails without a close for 5 s: the client resumes on the other node with the 1,000 events sent meanwhile from both nodes, once each, in order, then live ones', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const a = await node(t, url, prefix)
  const b = await node(t, url, prefix)
  const proxy = await startCutProxy(a.port)
  t.after(() => proxy.close())
  const { client, log } = tickClient(t, `ws://127.0.0.1:${proxy.port}/ticks`)
  await sessions(log, 1)
  const id = log.sessions[0]?.id as string
  await client.request('join', { room: 'lobby' })
  const fromA = tickPublisher(a.app, 'a', 'lobby', id)
  const fromB = tickPublisher(b.app, 'b', 'lobby', id)
  for (let n = 1; n <= 30; n++) { fromA(n, n % 3 === 0 ? 'all' : n % 3 === 1 ? 'room' : 'client'); fromB(n, n % 3 === 0 ? 'all' : n % 3 === 1 ? 'room' : 'client') }
  await allArrived(log, { a: 30, b: 30 })

  // The network fails: node A still holds the client, its writes vanish, reconnects are refused.
  proxy.cut()
  const [lastA, lastB] = await Promise.all([publishOver(fromA, 30, 500, DOWN_MS), publishOver(fromB, 30, 500, DOWN_MS)])
  assert.equal(a.app.hub.clients.has(id), true, 'node A never saw a close')
  proxy.retarget(b.port)
  proxy.restore()
  await sessions(log, 2, 10_000)
  assert.deepEqual(log.sessions[1], { id, recovered: true })
  await allArrived(log, { a: lastA, b: lastB })
  assert.equal(b.app.hub.clients.get(id)?.rooms.has('lobby'), true)
  assert.equal(a.app.hub.clients.has(id), false, 'node A let the half-open socket go')

  // Live events follow, from both nodes, with no gap and no duplicate at the seam.
  for (let n = lastA + 1; n <= lastA + 30; n++) fromA(n, n % 3 === 0 ? 'all' : n % 3 === 1 ? 'room' : 'client')
  for (let n = lastB + 1; n <= lastB + 30; n++) fromB(n, n % 3 === 0 ? 'all' : n % 3 === 1 ? 'room' : 'client')
  await allArrived(log, { a: lastA + 30, b: lastB + 30 })
  assert.deepEqual(b.opens.seen.map(open => open.recovered), [true])
})

/**
 * A node of the tick route in a process of its own, to be SIGKILLed. Env: REDIS_URL, PREFIX.
 * Prints { port } when it listens; on a stdin line {"publish":N,"room":R,"to":ID} it publishes
 * N ticks (from "killed") and prints { recorded } once Redis has taken every one.
 */
const nodeScript = `
import Fastify from 'fastify'
import { createInterface } from 'node:readline'
import fastifyWsHub, { Type } from './dist/index.js'
import { redisAdapter } from './dist/adapters/redis/index.js'

const app = Fastify()
await app.register(fastifyWsHub, {
  heartbeat: false,
  recovery: { maxDisconnection: 30000, maxMessages: 5000 },
  adapter: redisAdapter({ url: process.env.REDIS_URL, prefix: process.env.PREFIX })
})
app.hub.route({
  url: '/ticks',
  messages: { join: Type.Object({ room: Type.String() }), leave: Type.Object({ room: Type.String() }) },
  events: { tick: Type.Object({ n: Type.Integer(), from: Type.String(), to: Type.String() }) },
  handlers: {
    async join (client, data) { await client.join(data.room); return { id: client.id, rooms: [...client.rooms] } },
    leave (client, data) { client.leave(data.room); return null }
  }
})
await app.listen({ port: 0, host: '127.0.0.1' })
let n = 0
createInterface({ input: process.stdin }).on('line', async (line) => {
  const { publish, room, to } = JSON.parse(line)
  for (let i = 0; i < publish; i++) {
    n++
    if (n % 3 === 0) app.hub.broadcastEvent('tick', { n, from: 'killed', to: '*' })
    else if (n % 3 === 1) app.hub.broadcastEvent('tick', { n, from: 'killed', to: room }, { room })
    else app.hub.sendEventTo(to, 'tick', { n, from: 'killed', to })
  }
  const stats = () => app.hub.stats()
  while (stats()['adapter.published'] + stats()['adapter.dropped'] < n) await new Promise(resolve => setTimeout(resolve, 10))
  process.stdout.write(JSON.stringify({ recorded: stats()['adapter.published'] }) + '\\n')
})
process.stdout.write(JSON.stringify({ port: app.server.address().port }) + '\\n')
`

test('the node a client was on is SIGKILLed: the client resumes on another node with every event sent meanwhile, once each, in order', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const doomed = spawnScript(t, nodeScript, { REDIS_URL: url, PREFIX: prefix }, 'pipe')
  const { port } = await doomed.nextLine<{ port: number }>()
  const b = await node(t, url, prefix)
  const proxy = await startCutProxy(port)
  t.after(() => proxy.close())
  const { client, log } = tickClient(t, `ws://127.0.0.1:${proxy.port}/ticks`)
  await sessions(log, 1)
  const id = log.sessions[0]?.id as string
  await client.request('join', { room: 'lobby' })

  // The link fails, the doomed node records 300 events the client never gets, then dies.
  proxy.cut()
  doomed.child.stdin?.write(JSON.stringify({ publish: 300, room: 'lobby', to: id }) + '\n')
  const { recorded } = await doomed.nextLine<{ recorded: number }>()
  assert.equal(recorded, 300)
  doomed.child.kill('SIGKILL')
  const fromB = tickPublisher(b.app, 'b', 'lobby', id)
  const lastB = await publishOver(fromB, 0, 700, DOWN_MS)
  proxy.retarget(b.port)
  proxy.restore()
  await sessions(log, 2, 10_000)
  assert.deepEqual(log.sessions[1], { id, recovered: true })
  await allArrived(log, { killed: 300, b: lastB })
  for (let n = lastB + 1; n <= lastB + 30; n++) fromB(n, n % 3 === 0 ? 'all' : n % 3 === 1 ? 'room' : 'client')
  await allArrived(log, { killed: 300, b: lastB + 30 })
})

test('across nodes: a forged token, or a second socket while the first is open, gets a fresh session', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const a = await node(t, url, prefix)
  const b = await node(t, url, prefix)
  const first = await rawSession(t, a.url)
  const { id, token } = await first.session()
  const forged = await rawSession(t, b.url, { id, token: 'forged' })
  assert.equal((await forged.session()).recovered, false)
  const second = await rawSession(t, b.url, { id, token })
  const fresh = await second.session()
  assert.equal(fresh.recovered, false)
  assert.notEqual(fresh.id, id)
  assert.equal(a.app.hub.clients.has(id), true, 'the first socket keeps its session')
  first.socket.terminate()
  await waitFor(() => !a.app.hub.clients.has(id), 2000, 'the first socket gone')
  const third = await rawSession(t, b.url, { id, token })
  assert.equal((await third.session()).recovered, true)
})

test('Redis restarted empty: the history is gone, the client gets a fresh session and nothing twice', async (t) => {
  const server = await useRedisServer(t) as RedisServer | undefined
  if (server === undefined) return
  const prefix = uniquePrefix()
  const a = await node(t, server.url, prefix)
  const first = await rawSession(t, a.url)
  const { id, token } = await first.session()
  ticksOf(a.app).broadcastEvent('tick', { n: 1, from: 'a', to: '*' })
  await waitFor(() => first.frames.some(frame => frame.type === 'tick'), 3000, 'a tick')
  const positions = first.positions()
  first.socket.terminate()
  await waitFor(() => !a.app.hub.clients.has(id), 2000, 'gone')
  await server.kill()
  await server.start()
  // The node's link comes back by itself; then events go on from offset 1 of a new epoch.
  await waitFor(() => a.app.hub.stats()['adapter.pendingBytes'] === 0, 5000, 'the link back')
  await sleep(500)
  ticksOf(a.app).broadcastEvent('tick', { n: 2, from: 'a', to: '*' })
  const back = await rawSession(t, a.url, { id, token, positions })
  const session = await back.session()
  assert.equal(session.recovered, false)
  assert.notEqual(session.id, id)
  await sleep(200)
  assert.deepEqual(back.frames.filter(frame => frame.type === 'tick').map(frame => (frame.data as { n: number }).n), [])
})

test('Redis unreachable: events still reach this node\'s clients without a position, new clients open without a session', async (t) => {
  const server = await useRedisServer(t) as RedisServer | undefined
  if (server === undefined) return
  const prefix = uniquePrefix()
  const a = await startRecoveryHub(t, { adapter: redisAdapter({ url: server.url, prefix, stallTimeout: 300 }), recovery: { maxDisconnection: 30_000, maxMessages: 5_000 } })
  const live = await rawSession(t, a.url)
  await live.session()
  await server.kill()
  // Events in flight when the link went down are dropped (and counted); once the adapter knows,
  // they go to this node's clients without being recorded.
  let probes = 0
  const fromProbe = (frame: { data: unknown }): boolean => (frame.data as { from?: string } | undefined)?.from === 'probe'
  await waitFor(() => {
    ticksOf(a.app).broadcastEvent('tick', { n: ++probes, from: 'probe', to: '*' })
    return live.frames.some(fromProbe)
  }, 5000, 'the link known down')
  ticksOf(a.app).broadcastEvent('tick', { n: 1, from: 'a', to: '*' })
  await waitFor(() => live.frames.some(frame => (frame.data as { from?: string } | undefined)?.from === 'a'), 3000, 'the tick')
  const tick = live.frames.find(frame => (frame.data as { from?: string } | undefined)?.from === 'a')
  assert.equal(tick?.pos, undefined, 'no position: not recorded')
  const fresh = await rawSession(t, a.url)
  await waitFor(() => a.opens.seen.length === 2, 5000, 'the new client open')
  await sleep(100)
  assert.deepEqual(fresh.frames.filter(frame => frame.type === '$session'), [], 'no session to resume')
})
