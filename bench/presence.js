// Presence (issue 13) on Redis:
//   1. `hub.presence(room)` of a room of 10,000 members across 4 nodes (2,500 real websocket
//      clients each): p50/p99 of repeated calls (target < 50 ms).
//   2. A room of 1,000 members under churn of 100 joins a second and as many leaves, for 10 s:
//      how long after a join (its socket's connect) and a leave (its socket's close) the other
//      members get `$join` / `$leave`, p50/p99/max, and per second, to see whether it grows.
//
//   3. `hub.fetchClients({ room })` of a room of 10,000 real clients on 4 nodes (--part fetch).
//
//   node bench/presence.js [--quick] [--part big|read|churn|fetch]
//
// Run `npm run build` first (it runs on dist/). Needs a Redis at REDIS_URL (default
// redis://127.0.0.1:6379); each part uses a prefix of its own and deletes its keys after.
// The nodes are processes of their own (this file with --node; --part read: 4 apps in this
// process, with no clients); the clients are raw
// `net` sockets in a child process (this file with --clients), which parse frames only on the
// sampled sockets, so that the clients' own CPU stays small. Both processes share the machine's
// clock (Date.now), so a delay is one clock's reading against another's of the same machine.
import { fork } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import net from 'node:net'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import fastifyWsHub from '../dist/index.js'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import { killChildrenOnExit, startChild, stopChild } from './children.js'
import { serve } from './ipc.js'
import { latencySummary } from './measure.js'
import { cleanRedis } from './recovery-shared.js'
import { sleep, until } from './wait.js'

const thisFile = fileURLToPath(import.meta.url)
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

// ---------------------------------------------------------------- the client process

/** Reads server frames off a raw socket: text payloads, in order. Enough for unmasked, unfragmented frames. */
function frameReader (onText) {
  let pending = Buffer.alloc(0)
  return (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    while (pending.length >= 2) {
      let length = pending[1] & 0x7f
      let offset = 2
      if (length === 126) {
        if (pending.length < 4) return
        length = pending.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (pending.length < 10) return
        length = Number(pending.readBigUInt64BE(2))
        offset = 10
      }
      if (pending.length < offset + length) return
      if ((pending[0] & 0x0f) === 1) onText(pending.toString('utf8', offset, offset + length))
      pending = pending.subarray(offset + length)
    }
  }
}

/** Client sockets that failed (reset by a server), over the whole run. */
let resets = 0

/**
 * Opens one raw websocket client. Resolves once it has its id (`id:<id>`, the route's first
 * message). `onText` (sampled clients only) gets every later text frame.
 */
function openClient (port, query, onText) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.setNoDelay(true)
    let upgraded = false
    let id
    const read = frameReader((text) => {
      // A $join of another client may come between this client's join and its id
      if (id === undefined && text.startsWith('id:')) {
        id = text.slice(3)
        resolve({ socket, id })
        return
      }
      onText?.(text)
    })
    let head = Buffer.alloc(0)
    socket.on('data', (chunk) => {
      if (upgraded) {
        // Not sampled: everything after its id is read and thrown away, unparsed
        if (id === undefined || onText !== undefined) read(chunk)
        return
      }
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      upgraded = true
      const rest = head.subarray(end + 4)
      if (rest.length > 0) read(rest)
    })
    // Every error is handled: one unhandled would end this process and close every client with it
    socket.on('error', (error) => {
      resets++
      reject(error)
    })
    socket.write(`GET /ws?${query} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
  })
}

/** The client process: does what the driver asks over IPC. */
function runClients () {
  const stable = []
  /** Delays (ms) of the events the sampled clients got: [second of the run, kind, delay]. */
  const samples = []
  /** Churner index -> when its connect began; churner id -> when its close was sent. */
  const joinedAt = new Map()
  const closedAt = new Map()
  let churnStart = 0
  /** Per churner: ms from its connect to its id (the route's onOpen done, joins included). */
  const openDelays = []
  const onSampled = (text) => {
    const now = Date.now()
    const { type, data } = JSON.parse(text)
    if (type === '$join') {
      const [key, upgradedAt] = data.params.userId.split('@')
      const t0 = joinedAt.get(key)
      if (t0 !== undefined) samples.push([Math.floor((t0 - churnStart) / 1000), 0, now - t0, now - Number(upgradedAt)])
    } else if (type === '$leave') {
      const t0 = closedAt.get(data.id)
      if (t0 !== undefined) samples.push([Math.floor((t0 - churnStart) / 1000), 1, now - t0])
    }
  }
  const handlers = {
    /** Connects `n` clients to each port, in room `room`, `sampled` of them (per port) parsing what they get. */
    async connect ({ ports, n, room, sampled, from = 0 }) {
      // 250 at a time, each batch awaited: more at once overflows the servers' accept queues (resets)
      for (const port of ports) {
        for (let i = from; i < from + n; i += 250) {
          const batch = []
          for (let j = i; j < Math.min(from + n, i + 250); j++) {
            batch.push(openClient(port, `room=${room}&u=s${port}-${j}`, j < sampled ? onSampled : undefined))
          }
          stable.push(...(await Promise.allSettled(batch)).filter(result => result.status === 'fulfilled').map(result => result.value))
        }
      }
      return { open: stable.length, resets }
    },
    /** `rate` joins a second (each a new client, spread over the ports), each closed `life` ms after its join; for `seconds`. */
    async churn ({ ports, room, rate, seconds, life }) {
      const cpu0 = process.cpuUsage()
      const loop = monitorEventLoopDelay({ resolution: 10 })
      loop.enable()
      churnStart = Date.now()
      const total = rate * seconds
      const opened = []
      let failed = 0
      for (let k = 0; k < total; k++) {
        const due = churnStart + (k * 1000) / rate
        const wait = due - Date.now()
        if (wait > 0) await sleep(wait)
        const key = `c${k}`
        joinedAt.set(key, Date.now())
        opened.push(openClient(ports[k % ports.length], `room=${room}&u=${key}`).then(({ socket, id }) => {
          openDelays.push(Date.now() - (joinedAt.get(key) ?? 0))
          setTimeout(() => {
            closedAt.set(id, Date.now())
            socket.end()
          }, life)
        }, () => { failed++ }))
      }
      await Promise.all(opened)
      await sleep(life + 2000)
      const cpu = process.cpuUsage(cpu0)
      const open = latencySummary(openDelays)
      loop.disable()
      open.loopDelayP99 = loop.percentile(99) / 1e6
      return { joins: total, failed, open, cpuPercent: Math.round((cpu.user + cpu.system) / 10 / (Date.now() - churnStart)) }
    },
    samples () {
      return samples
    },
    async closeAll () {
      for (const { socket } of stable) socket.destroy()
      stable.length = 0
      samples.length = 0
      joinedAt.clear()
      closedAt.clear()
      return true
    }
  }
  process.on('message', async ({ call, args, seq }) => {
    try {
      process.send({ seq, result: await handlers[call](args) })
    } catch (error) {
      process.send({ seq, error: String(error?.stack ?? error) })
    }
  })
}

// ---------------------------------------------------------------- the driver

function clientProcess () {
  const child = fork(thisFile, ['--clients'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let seq = 0
  const waiting = new Map()
  child.on('message', ({ seq: n, result, error }) => {
    const { resolve, reject } = waiting.get(n)
    waiting.delete(n)
    if (error === undefined) resolve(result)
    else reject(new Error(error))
  })
  return {
    child,
    call (call, args = {}) {
      return new Promise((resolve, reject) => {
        waiting.set(++seq, { resolve, reject })
        child.send({ call, args, seq })
      })
    }
  }
}

/** One hub with presence on every `p:` room and the route `/ws?room=&u=` (u: the member's userId). */
async function startNode (prefix) {
  const app = Fastify()
  await app.register(fastifyWsHub, {
    heartbeat: false,
    handshakeMessage: false,
    presence: { rooms: room => room.startsWith('p:'), params: ['userId'] },
    adapter: redisAdapter({ url: REDIS_URL, prefix })
  })
  app.hub.route({
    url: '/ws',
    // The server's clock at the upgrade rides in the params: the bench measures from it too
    onUpgrade: request => ({ userId: `${request.query.u}@${Date.now()}` }),
    async onOpen (client) {
      await client.join(client.request.query.room)
      client.send(`id:${client.id}`)
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: app.server.address().port }
}

/**
 * The node process (this file with --node <prefix>): one hub of `startNode`, its event-loop delay
 * watched, answering the driver's calls over IPC. A process per node, as in production: nodes in
 * one process would share one event loop, and the bench would measure that loop's backlog.
 */
async function runNode (prefix) {
  const { app, port } = await startNode(prefix)
  const loop = monitorEventLoopDelay({ resolution: 10 })
  let cpu0 = process.cpuUsage()
  let wall0 = performance.now()
  serve({
    presenceSize: async ({ room }) => (await app.hub.presence(room)).length,
    timePresence: async ({ room, total, calls }) => await timePresence([{ app }], room, total, calls),
    timeFetch: async ({ room, total, calls }) => await timeFetch(app, room, total, calls),
    watch: () => {
      loop.reset()
      loop.enable()
      cpu0 = process.cpuUsage()
      wall0 = performance.now()
      return true
    },
    report: () => {
      loop.disable()
      const cpu = process.cpuUsage(cpu0)
      return {
        loopDelay: { p50: round(loop.percentile(50) / 1e6), p99: round(loop.percentile(99) / 1e6), max: round(loop.max / 1e6) },
        cpuPercent: round((cpu.user + cpu.system) / 10 / (performance.now() - wall0)),
        dropped: app.hub.stats().dropped
      }
    },
    close: async () => {
      await app.close()
      return true
    }
  })
  process.send({ ready: true, port })
}

/** Times `calls` calls of hub.fetchClients({ room }), each checked to list `total`. */
async function timeFetch (app, room, total, calls) {
  const durations = []
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now()
    const clients = await app.hub.fetchClients({ room })
    durations.push(performance.now() - t0)
    if (clients.length !== total) throw new Error(`fetchClients listed ${clients.length} of ${total}`)
  }
  const summary = latencySummary(durations)
  return { clients: total, calls, p50: round(summary.p50), p99: round(summary.p99), max: round(summary.max) }
}

/** Starts `count` node processes on one prefix. */
async function startNodes (count, prefix) {
  return await Promise.all(Array.from({ length: count }, (_, i) => startChild(thisFile, 'node', prefix, `node ${i}`)))
}

function round (value) {
  return value === null ? null : Math.round(value * 10) / 10
}

/** Times `calls` calls of hub.presence(room), from each node in turn, each checked to list `total`. */
async function timePresence (nodes, room, total, calls) {
  const durations = []
  for (let i = 0; i < calls; i++) {
    const node = nodes[i % nodes.length]
    const t0 = performance.now()
    const members = await node.app.hub.presence(room)
    durations.push(performance.now() - t0)
    if (members.length !== total) throw new Error(`presence listed ${members.length} of ${total}`)
  }
  const summary = latencySummary(durations)
  return { members: total, calls, p50: round(summary.p50), p99: round(summary.p99), max: round(summary.max) }
}

/**
 * Fills a room in steps (a quarter of the clients each), timing hub.presence() (and
 * hub.fetchClients({ room })) at each size, each node in a process of its own: the figures of a
 * step are printed as soon as it is done.
 */
async function presenceOfBigRoom (clients, redis, { nodes, perNode, calls }) {
  const prefix = `fwh-bench-presence:${randomUUID()}`
  const started = await startNodes(nodes, prefix)
  const room = 'p:big'
  const [a] = started
  const steps = []
  const fillStart = performance.now()
  try {
    for (let step = 1; step <= 4; step++) {
      const n = perNode / 4
      const { open, resets } = await clients.call('connect', { ports: started.map(node => node.port), n, room, sampled: 0, from: (step - 1) * n })
      if (resets > 0) console.log(`${resets} client sockets reset so far`)
      const total = open
      if (!await until(async () => await a.call('presenceSize', { room }) === total, 300_000, 250)) {
        throw new Error(`presence never reached ${total}: ${await a.call('presenceSize', { room })}`)
      }
      // Let the $join storm of the fill (about n²/2 frames) drain before measuring
      await sleep(1000)
      const perNodeCalls = Math.ceil(calls / nodes)
      const timings = []
      for (const node of started) timings.push(await node.call('timePresence', { room, total, calls: perNodeCalls }))
      const fetches = []
      for (const node of started) fetches.push(await node.call('timeFetch', { room, total, calls: Math.ceil(perNodeCalls / 4) }))
      const timed = {
        members: total,
        presence: pooled(timings),
        fetchClients: pooled(fetches),
        filledAfterSeconds: round((performance.now() - fillStart) / 1000)
      }
      console.log(`${total}-member room on ${nodes} nodes: presence() p50 ${timed.presence.p50} ms, p99 ${timed.presence.p99} ms, max ${timed.presence.max} ms; ` +
        `fetchClients({ room }) p50 ${timed.fetchClients.p50} ms, p99 ${timed.fetchClients.p99} ms (filled after ${timed.filledAfterSeconds} s)`)
      steps.push(timed)
    }
    const redisHashBytes = await redis.memory('USAGE', `${prefix}:db0:presence:{${room}}`)
    return { nodes, steps, redisHashBytes }
  } finally {
    await clients.call('closeAll')
    await Promise.all(started.map(node => stopChild(node)))
    await cleanRedis(redis, prefix)
  }
}

/**
 * `hub.fetchClients({ room })` of a room of `nodes * perNode` real websocket clients (a room
 * without presence: no $join storm while it fills), each node in a process of its own, timed from
 * each node in turn.
 */
async function fetchOfBigRoom (clients, redis, { nodes, perNode, calls }) {
  const prefix = `fwh-bench-presence:${randomUUID()}`
  const started = await startNodes(nodes, prefix)
  const room = 'f:big'
  try {
    const { open } = await clients.call('connect', { ports: started.map(node => node.port), n: perNode, room, sampled: 0 })
    await sleep(1000)
    const fetches = []
    for (const node of started) fetches.push(await node.call('timeFetch', { room, total: open, calls: Math.ceil(calls / nodes) }))
    return { clients: open, nodes, fetchClients: pooled(fetches) }
  } finally {
    await clients.call('closeAll')
    await Promise.all(started.map(node => stopChild(node)))
    await cleanRedis(redis, prefix)
  }
}

/** The timings of several nodes as one: the worst p50, p99 and max of them (each node timed its own calls). */
function pooled (timings) {
  return {
    calls: timings.reduce((sum, timing) => sum + timing.calls, 0),
    p50: Math.max(...timings.map(timing => timing.p50)),
    p99: Math.max(...timings.map(timing => timing.p99)),
    max: Math.max(...timings.map(timing => timing.max))
  }
}

/**
 * The read path alone at 10,000 members: 4 hubs on Redis, each entering 2,500 members through its
 * adapter's presence store (what a join does, without the sockets and their $join storm), then
 * `hub.presence(room)` timed as above (the same HGETALL, lease checks and decoding).
 */
async function presenceRead (redis, { nodes, perNode, calls }) {
  const prefix = `fwh-bench-presence:${randomUUID()}`
  const adapters = Array.from({ length: nodes }, () => redisAdapter({ url: REDIS_URL, prefix }))
  const started = await Promise.all(adapters.map(async (adapter) => {
    const app = Fastify()
    await app.register(fastifyWsHub, { heartbeat: false, presence: { rooms: () => true, params: ['userId'] }, adapter })
    await app.ready()
    return { app }
  }))
  const room = 'p:big'
  try {
    await Promise.all(started.map((node, n) => Promise.all(Array.from({ length: perNode }, (_, i) => adapters[n].presence.enter(room, {
      id: randomUUID(), nodeId: node.app.hub.nodeId, params: { userId: `user-${n}-${i}` }, since: Date.now()
    })))))
    await sleep(500)
    return await timePresence(started, room, nodes * perNode, calls)
  } finally {
    await Promise.all(started.map(node => node.app.close()))
    await cleanRedis(redis, prefix)
  }
}

async function churn (clients, redis, { nodes, members, rate, seconds, life, sampledPerNode }) {
  const prefix = `fwh-bench-presence:${randomUUID()}`
  const started = await startNodes(nodes, prefix)
  const ports = started.map(node => node.port)
  const room = 'p:churn'
  await clients.call('connect', { ports, n: members / nodes, room, sampled: sampledPerNode })
  const [a] = started
  if (!await until(async () => await a.call('presenceSize', { room }) === members, 60_000, 100)) throw new Error('the stable members never all entered')
  await sleep(1000)
  await Promise.all(started.map(node => node.call('watch')))
  const result = await clients.call('churn', { ports, room, rate, seconds, life })
  const reports = await Promise.all(started.map(node => node.call('report')))
  const samples = await clients.call('samples')
  const kinds = ['$join', '$leave']
  const byKind = kinds.map((_, kind) => latencySummary(samples.filter(s => s[1] === kind).map(s => s[2])))
  const fromUpgrade = latencySummary(samples.filter(s => s[1] === 0).map(s => s[3]))
  const perSecond = []
  for (let second = 0; second < seconds; second++) {
    const inSecond = samples.filter(s => s[0] === second)
    const joins = latencySummary(inSecond.filter(s => s[1] === 0).map(s => s[2]))
    const leaves = latencySummary(inSecond.filter(s => s[1] === 1).map(s => s[2]))
    perSecond.push({
      second,
      'join p50 (from connect)': round(joins.p50),
      'join p99 (from connect)': round(joins.p99),
      'leave p50': round(leaves.p50),
      'leave p99': round(leaves.p99)
    })
  }
  const expected = result.joins * 2 * sampledPerNode * nodes
  const endMembers = await a.call('presenceSize', { room })
  await clients.call('closeAll')
  await Promise.all(started.map(node => stopChild(node)))
  await cleanRedis(redis, prefix)
  return {
    members,
    nodes,
    rate,
    seconds,
    failedJoins: result.failed,
    events: { expected, received: samples.length },
    join: { p50: round(byKind[0].p50), p99: round(byKind[0].p99), max: round(byKind[0].max) },
    joinFromUpgrade: { p50: round(fromUpgrade.p50), p99: round(fromUpgrade.p99), max: round(fromUpgrade.max) },
    leave: { p50: round(byKind[1].p50), p99: round(byKind[1].p99), max: round(byKind[1].max) },
    perSecond,
    membersAfter: endMembers,
    clientsCpuPercent: result.cpuPercent,
    nodeReports: reports,
    connectToOpen: result.open
  }
}

async function main () {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, part: { type: 'string', default: 'all' } } })
  const quick = values.quick
  const part = values.part
  killChildrenOnExit()
  const redis = new Redis(REDIS_URL)
  const clients = clientProcess()
  try {
    if (part === 'fetch') {
      const fetched = await fetchOfBigRoom(clients, redis, { nodes: 4, perNode: quick ? 500 : 2500, calls: 100 })
      console.log(`fetchClients({ room }) of ${fetched.clients} clients on ${fetched.nodes} nodes: p50 ${fetched.fetchClients.p50} ms, p99 ${fetched.fetchClients.p99} ms, max ${fetched.fetchClients.max} ms (${fetched.fetchClients.calls} calls)`)
      return
    }
    if (part === 'read') {
      const read = await presenceRead(redis, { nodes: 4, perNode: 2500, calls: 200 })
      console.log(`presence() read path, ${read.members} members entered through the store on 4 nodes: p50 ${read.p50} ms, p99 ${read.p99} ms, max ${read.max} ms (${read.calls} calls)`)
      return
    }
    const big = part === 'churn' ? undefined : await presenceOfBigRoom(clients, redis, { nodes: 4, perNode: quick ? 500 : 2500, calls: quick ? 20 : 100 })
    if (big !== undefined) console.log(`Redis hash of the full room: ${big.redisHashBytes} bytes`)
    if (part === 'big') return
    const live = await churn(clients, redis, { nodes: 2, members: 1000, rate: 100, seconds: quick ? 4 : 10, life: 1000, sampledPerNode: 10 })
    console.log(`churn of ${live.rate} joins/s (+ as many leaves) in a ${live.members}-member room on ${live.nodes} nodes for ${live.seconds} s: ` +
      `$join from the server's upgrade p50 ${live.joinFromUpgrade.p50} / p99 ${live.joinFromUpgrade.p99} / max ${live.joinFromUpgrade.max} ms ` +
      `(from the client's connect p50 ${live.join.p50} / p99 ${live.join.p99} / max ${live.join.max} ms); $leave p50 ${live.leave.p50} / p99 ${live.leave.p99} / max ${live.leave.max} ms; ` +
      `${live.events.received} of ${live.events.expected} sampled events`)
    console.table(live.perSecond)
    console.log(JSON.stringify({ big, churn: live }))
  } finally {
    clients.child.kill()
    redis.disconnect()
  }
}

if (process.argv.includes('--clients')) runClients()
else if (process.argv.includes('--node')) await runNode(JSON.parse(process.argv[process.argv.indexOf('--node') + 1]))
else await main()
