// fastify-ws-hub's side of the session-recovery comparison (socket.io's: bench/recovery-socketio.js,
// same plan, same fleet, same output conventions): what the hub's `recovery` option costs on the
// broadcast path of a typed route, and how long it takes to replay missed events to a client that
// comes back. Run after `npm run build`; the Redis cases need a Redis at REDIS_URL (default
// redis://127.0.0.1:6379).
//
//   node bench/recovery.js [--quick] [--clients N] [--broadcasts N] [--rate N] [--missed N]
//                          [--live-reps N] [--live-rate N] [--only=broadcast,replay] [--filter TEXT]
//
// Defaults: 200 clients, 1000 broadcasts at 100/s, 10,000 missed, 5 runs of each live case;
// --quick: 100 clients, 300 broadcasts, 2,000 missed, 2 runs. --filter runs only the variants and
// cases whose label contains TEXT (e.g. --filter=memory). For a profile of the hub nodes:
// `node --cpu-prof --cpu-prof-dir=DIR bench/recovery.js ...` (the children inherit the flag).
//
// Every hub is a child process (this file with --node): Fastify + the plugin, one typed route `/ws`
// with one event `m` ({ t: send time µs, s: seq, p: 40 bytes }), no heartbeat, no read timeout.
// Variants (the `adapter` of each node):
//   memory   the default in-process adapter; with recovery on, its in-memory history (one process)
//   redis    the Redis adapter (prefix of its own per run); recovery on needs the Redis adapter's
//            recovery store (branch redis-recovery): on a build without it those rows say "skipped"
// `recovery`: { maxDisconnection: 120000, maxMessages } when on, false when off.
//
// a) broadcast: `clients` raw-socket clients (bench/fleet.js, in one process) connected to one
//    node, or split in halves over two nodes sharing Redis; node A calls hub.broadcastEvent('m')
//    `broadcasts` times paced at `rate`/s, after a warm-up of 100 not counted. Per variant: server
//    CPU (user + system, both nodes added) per delivery over the paced window, Redis CPU per
//    delivery, fan-out latency p50/p99/max (send stamp in node A's CLOCK_MONOTONIC, read by the fleet
//    on arrival), loss. With recovery on every event carries `"pos":["*",epoch,offset]` (~25 bytes
//    more) and is recorded in the `*` stream first, then delivered from it (on Redis: after the
//    round trip, on node A too). The CPU ratio recovery on / off is printed per adapter (the
//    issue's target: at most 1.5x).
// b) replay: one client of the client library (fastify-ws-hub/client over ws, in this process) with
//    a session. It receives one event (as socket.io's bench does, so that it has a position), then
//    its socket is terminated FROM THE CLIENT SIDE (ws terminate(): the TCP connection is destroyed
//    with no close frame, an abnormal close, 1006, at both ends). The bench waits until the node has
//    dropped the client (the server HAS seen the connection end, not a clean websocket close, before
//    anything is published), so that the events are missed, not buffered. While it is away its
//    reconnection attempts go to a closed port (the client library's own backoff, 10..20 ms). Node A
//    then publishes `missed` events (seq 2..missed+1): to everyone with broadcastEvent, or to that
//    client with sendEventTo (the `sendEventTo` cases, followed by one broadcast "fence", seq 0, not
//    counted, that the client gets too). A witness socket on node A waits until it has them all
//    (or the fence): then everything is in the history (on Redis it is delivered from there, on
//    node A too). The witness is closed before the resume. Then the attempts are let
//    through (to node B in the "other node" cases): measured from the construction of the socket
//    that gets through (the reconnect that resumes) to the arrival of the `missed`th missed event;
//    every event is checked (count, order, no duplicate) and the session's `recovered` read. Also
//    the server CPU of the replay (the node the client came back to). Cases:
//      memory (1 process)          memory adapter, maxMessages = 10x missed, broadcasts
//      memory sendEventTo          the same, the events sent to the client's id
//      memory default maxMessages  maxMessages left at 10,000: does a gap of exactly 10,000 fit?
//      redis ...                   the same on the Redis adapter, one node, and the resume on the
//                                  other node (events published on A, resume on B)
//      memory/redis live #i        node A keeps publishing at 100/s (--live-rate) from the reconnect
//                                  on for 1.5 s: events published between the history read and the
//                                  socket's going live must be neither lost nor doubled (the check
//                                  covers seq 2..the last live one)
//
// Prints a table per part and one JSON line per measurement ({"bench":"recovery",...}), then one
// JSON line with everything, also written to bench/results/recovery(-quick).json.
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { killChildrenOnExit, startChild, stopChild } from './children.js'
import { broadcastTable, checkSeqs, cleanRedis, connectFleet, measureBroadcasts, pacedEmits, replayTable, writeResults } from './recovery-shared.js'
import { nowMicros, serve } from './ipc.js'
import { cpuUsOf, machineInfo } from './measure.js'
import { reachableRedis } from './redis-admin.js'
import { sleep, until } from './wait.js'

const here = dirname(fileURLToPath(import.meta.url))
const self = fileURLToPath(import.meta.url)
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const PATH = '/ws'
const PADDING = 'x'.repeat(40)
/** Where the replay client's attempts go while it is kept away: nothing listens on port 1. */
const CLOSED_PORT = 1

const { values: args } = parseArgs({
  options: {
    node: { type: 'string' },
    quick: { type: 'boolean', default: false },
    clients: { type: 'string' },
    broadcasts: { type: 'string' },
    rate: { type: 'string' },
    missed: { type: 'string' },
    'live-reps': { type: 'string' },
    'live-rate': { type: 'string' },
    only: { type: 'string' },
    filter: { type: 'string' }
  }
})

/** The built plugin; a build running meanwhile (rm -rf dist && tsc) gets a few seconds to finish. */
async function importBuild (path) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await import(path)
    } catch (error) {
      if (attempt === 20 || error.code !== 'ERR_MODULE_NOT_FOUND') throw error
      await sleep(500)
    }
  }
}

/**
 * A hub node: its adapter and recovery setting from `cfg`, and the IPC calls the driver uses.
 * @param {{ adapter: 'memory' | 'redis', recovery: boolean, prefix: string, maxMessages?: number, handshake: boolean }} cfg
 */
async function runNode (cfg) {
  const { default: Fastify } = await import('fastify')
  const { default: fastifyWsHub, Type } = await importBuild('../dist/index.js')
  let adapter
  if (cfg.adapter === 'redis') {
    const { redisAdapter } = await importBuild('../dist/adapters/redis/index.js')
    adapter = redisAdapter({ url: REDIS_URL, prefix: cfg.prefix })
  }
  if (cfg.recovery && adapter !== undefined && adapter.recovery === undefined) {
    // This build's Redis adapter keeps no history: say so instead of failing the whole bench.
    adapter.close?.()
    serve({ skipped: () => 'the Redis adapter of this build has no recovery store', close: () => true })
    process.send({ ready: true, port: 0 })
    return
  }
  const recovery = cfg.recovery ? { maxDisconnection: 120_000, ...(cfg.maxMessages === undefined ? {} : { maxMessages: cfg.maxMessages }) } : false
  const app = Fastify()
  await app.register(fastifyWsHub, {
    heartbeat: false,
    readTimeout: 0,
    // the fleet counts every text frame: no handshake there; the client library expects it
    handshakeMessage: cfg.handshake ? undefined : false,
    recovery,
    ...(adapter === undefined ? {} : { adapter })
  })
  let recovered = 0
  app.hub.route({
    url: PATH,
    events: { m: Type.Object({ t: Type.Integer(), s: Type.Integer(), p: Type.String() }) },
    onOpen (client) { if (client.recovered) recovered++ }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })

  let seq = 0
  const hub = app.hub
  const emit = () => hub.broadcastEvent('m', { t: Math.round(nowMicros()), s: ++seq, p: PADDING })
  const sendTo = (id) => hub.sendEventTo(id, 'm', { t: Math.round(nowMicros()), s: ++seq, p: PADDING })
  let live
  serve({
    skipped: () => null,
    cpu: () => process.cpuUsage(),
    clock: () => nowMicros(),
    count: () => hub.onlineCount(),
    recovered: () => recovered,
    seq: () => seq,
    /** `count` broadcasts paced at `rate`/s (a late timer catches up, so the rate offered holds). */
    async paced ({ rate, count }) {
      return await pacedEmits(emit, rate, count)
    },
    /**
     * `count` events at once, to everyone; or (`to`) to one client, then a fence (seq 0) to everyone,
     * so that a socket of this node sees when the history has them all.
     */
    burst ({ count, to }) {
      const started = performance.now()
      for (let i = 0; i < count; i++) {
        if (to === undefined) emit()
        else sendTo(to)
      }
      if (to !== undefined) hub.broadcastEvent('m', { t: Math.round(nowMicros()), s: 0, p: PADDING })
      return { first: seq - count + 1, last: seq, ms: performance.now() - started }
    },
    /** Broadcasts at `rate`/s until `liveStop`. */
    liveStart ({ rate }) {
      // every 10 ms, the broadcasts due by then
      const started = performance.now()
      const first = seq
      live = setInterval(() => {
        const due = Math.floor((performance.now() - started) * rate / 1000)
        for (let n = due - (seq - first); n > 0; n--) emit()
      }, 10)
      return seq
    },
    liveStop () {
      clearInterval(live)
      return seq
    },
    async close () {
      await app.close()
      return true
    }
  })
  process.send({ ready: true, port: app.server.address().port })
}

/** Starts a node; `label` names it in errors. */
function startNode (cfg, label) {
  return startChild(self, 'node', cfg, label)
}

/** Starts `count` nodes of one configuration; the reason they cannot run, if this build cannot. */
async function startNodes (cfg, count, nodes) {
  for (let i = 0; i < count; i++) {
    const node = await startNode(cfg, `node ${'AB'[i]}`)
    nodes.push(node)
    const skipped = await node.call('skipped')
    if (skipped !== null) return skipped
  }
  return null
}

/** Part a: one broadcast variant, on `variant.nodes` nodes; node A broadcasts. */
async function broadcastCase (variant, plan, redis, fleet) {
  const prefix = `hub-recovery-bench:${randomUUID()}:`
  const nodes = []
  const base = { bench: 'recovery', part: 'broadcast', variant: variant.label, adapter: variant.adapter, recovery: variant.recovery, nodes: variant.nodes }
  try {
    const skipped = await startNodes({ adapter: variant.adapter, recovery: variant.recovery, prefix, handshake: false }, variant.nodes, nodes)
    if (skipped !== null) return { ...base, skipped }
    await connectFleet(fleet, nodes, plan.clients, { path: PATH, protocol: 'ws' })
    return { ...base, ...await measureBroadcasts(variant.label, nodes, fleet, redis, plan) }
  } finally {
    await fleet.call('closeAll')
    for (const node of nodes) await stopChild(node)
    await cleanRedis(redis, prefix)
  }
}

/**
 * A client of the client library that records every `m` event's seq. Its sockets are ws sockets
 * made by a subclass that sends them to `target.port`, or to a closed port while `target.away`, and
 * remembers when each was made.
 * @param {number} port the node it connects to first
 */
async function replayClient (port) {
  const { default: WebSocket } = await import('ws')
  const { createClient } = await importBuild('../dist/client/index.js')
  const target = { port, away: false }
  const made = []
  let current
  class BenchSocket extends WebSocket {
    constructor (address) {
      const url = new URL(address)
      url.port = String(target.away ? CLOSED_PORT : target.port)
      super(url.href)
      current = this
      made.push({ at: performance.now(), away: target.away, resume: url.searchParams.has('_resume') })
    }
  }
  const client = createClient(`ws://127.0.0.1:${port}${PATH}`, { WebSocket: BenchSocket, reconnect: { initialDelay: 10, maxDelay: 20 } })
  const seqs = []
  const sessions = []
  let onEvent = () => {}
  client.on('m', (data) => {
    if (data.s === 0) return // a fence
    seqs.push(data.s)
    onEvent()
  })
  client.on('session', (session) => sessions.push({ ...session, at: performance.now() }))
  if (!(await until(() => sessions.length === 1, 5000))) throw new Error('the replay client got no session')
  return {
    client,
    seqs,
    sessions,
    made,
    target,
    setOnEvent (fn) { onEvent = fn },
    /** Destroys the socket from this side: no close frame, the TCP connection goes (1006 at both ends). */
    cut () {
      target.away = true
      current.terminate()
    }
  }
}

/**
 * A plain ws socket on node A that counts the events (seq > 0) and the fences (seq 0) it gets. It waits for its `$session`:
 * on the Redis adapter a broadcast made just after a socket opens (before the hub has it set up) can
 * miss that socket, with recovery on or off (seen in 12-14 of 20 tries); the memory adapter's cannot.
 */
async function witness (port) {
  const { default: WebSocket } = await import('ws')
  const socket = new WebSocket(`ws://127.0.0.1:${port}${PATH}`)
  const state = { socket, events: 0, fences: 0, session: false }
  socket.on('message', (data) => {
    const text = data.toString()
    if (text.startsWith('{"type":"$session"')) state.session = true
    if (text.includes('"s":0,')) state.fences++
    else if (text.startsWith('{"type":"m"')) state.events++
  })
  await new Promise((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  if (!(await until(() => state.session, 5000))) throw new Error('the witness got no session')
  return state
}

/** Part b: one replay case. */
async function replayCase (replay, plan, redis) {
  const prefix = `hub-recovery-bench:${randomUUID()}:`
  const nodes = []
  const base = { bench: 'recovery', part: 'replay', case: replay.label, adapter: replay.adapter, to: replay.toClient ? 'client (sendEventTo)' : 'everyone (broadcastEvent)', maxMessages: replay.maxMessages ?? 'default (10000)', missed: plan.missed }
  let client
  let watcher
  try {
    const cfg = { adapter: replay.adapter, recovery: true, prefix, maxMessages: replay.maxMessages, handshake: true }
    const skipped = await startNodes(cfg, replay.otherNode ? 2 : 1, nodes)
    if (skipped !== null) return { ...base, skipped }
    const a = nodes[0]
    const back = nodes.at(-1)
    client = await replayClient(a.port)
    const id = client.sessions[0].id
    const to = replay.toClient ? id : undefined
    watcher = await witness(a.port)
    // One event before the cut, so that the client has a position (as in socket.io's bench).
    await a.call('burst', { count: 1, to })
    // the witness has everything published so far: the events to everyone, or the fence after those to the client
    const witnessed = (events) => to === undefined ? watcher.events === events : watcher.fences === events
    if (!(await until(() => client.seqs.length === 1 && witnessed(1), 5000))) throw new Error('the first event did not arrive')
    const before = client.seqs.length

    client.cut()
    // The node has seen the connection end (abnormally) before anything is published.
    if (!(await until(async () => (await a.call('count')) === 1, 5000, 20))) throw new Error('the node did not see the disconnection')
    const publishStarted = performance.now()
    const burst = await a.call('burst', { count: plan.missed, to })
    if (!(await until(() => witnessed(to === undefined ? 1 + plan.missed : 2), 30_000, 2))) throw new Error('the witness did not get the events (or the fence)')
    const publishMs = performance.now() - publishStarted
    watcher.socket.terminate()
    if (!(await until(async () => (await a.call('count')) === 0, 5000, 20))) throw new Error('the witness did not go')
    if (client.seqs.length !== before) throw new Error(`the client got ${client.seqs.length - before} events while away`)

    const wanted = before + plan.missed
    let doneAt
    client.setOnEvent(() => { if (doneAt === undefined && client.seqs.length >= wanted) doneAt = performance.now() })
    const cpuBefore = await back.call('cpu')
    let liveFirst
    if (replay.live) liveFirst = (await a.call('liveStart', { rate: plan.liveRate })) + 1
    const attemptsAway = client.made.length
    const letThrough = performance.now()
    client.target.port = back.port
    client.target.away = false
    await until(() => doneAt !== undefined, 30_000)
    const cpuAfter = await back.call('cpu')
    const resumed = client.made.slice(attemptsAway).find((socket) => !socket.away)
    const started = resumed?.at ?? letThrough
    const session = client.sessions[1]
    let liveLast
    if (replay.live) {
      await sleep(Math.max(0, 1500 - (performance.now() - started)))
      liveLast = await a.call('liveStop')
      await until(() => client.seqs.at(-1) === liveLast, 5000)
      await sleep(300)
    } else {
      await sleep(300) // anything after the last missed event would be a duplicate
    }
    const replayed = client.seqs.slice(before)
    const last = replay.live ? liveLast : burst.last
    const check = checkSeqs(replayed, burst.first, last)
    const row = {
      ...base,
      recovered: session?.recovered ?? null,
      sameId: session === undefined ? null : session.id === id,
      recoveredOnServer: await back.call('recovered'),
      resumeFrame: resumed?.resume ?? null,
      publishMs,
      waitMs: started - letThrough,
      connectMs: session === undefined ? null : session.at - started,
      replayMs: doneAt === undefined ? null : doneAt - started,
      serverCpuMs: cpuUsOf(cpuAfter, cpuBefore) / 1000,
      received: replayed.length,
      ...check
    }
    if (replay.live) Object.assign(row, { liveFrom: liveFirst, liveTo: liveLast, liveEvents: liveLast - liveFirst + 1 })
    return row
  } finally {
    client?.client.close()
    watcher?.socket.terminate()
    for (const node of nodes) await stopChild(node)
    await cleanRedis(redis, prefix)
  }
}

/** Recovery on / off CPU per delivery, for each adapter and node count that has both rows. */
function ratios (rows) {
  const out = []
  for (const on of rows) {
    if (!on.recovery || on.skipped !== undefined) continue
    const off = rows.find((r) => !r.recovery && r.skipped === undefined && r.adapter === on.adapter && r.nodes === on.nodes)
    if (off === undefined) continue
    out.push({
      adapter: on.adapter,
      nodes: on.nodes,
      cpuRatio: on.cpuUsPerDelivery / off.cpuUsPerDelivery,
      p99Ratio: on.p99Ms / off.p99Ms,
      target: 1.5,
      meetsTarget: on.cpuUsPerDelivery / off.cpuUsPerDelivery <= 1.5
    })
  }
  return out
}

async function main () {
  const quick = args.quick
  const plan = {
    clients: Number(args.clients ?? (quick ? 100 : 200)),
    broadcasts: Number(args.broadcasts ?? (quick ? 300 : 1000)),
    rate: Number(args.rate ?? 100),
    missed: Number(args.missed ?? (quick ? 2000 : 10_000)),
    liveReps: Number(args['live-reps'] ?? (quick ? 2 : 5)),
    liveRate: Number(args['live-rate'] ?? 100)
  }
  const parts = args.only?.split(',') ?? ['broadcast', 'replay']
  const wanted = (label) => args.filter === undefined || label.includes(args.filter)
  const { Redis } = await import('ioredis')
  const redis = await reachableRedis(Redis, REDIS_URL)
  if (redis === undefined) {
    console.error(`recovery bench: no Redis at ${REDIS_URL} (set REDIS_URL)`)
    process.exit(1)
  }
  killChildrenOnExit()
  const began = Date.now()
  const info = machineInfo(here)
  const pkg = createRequire(import.meta.url)('../package.json')
  console.log(`recovery bench${quick ? ' (quick)' : ''}: fastify-ws-hub ${pkg.version}, ${info.nproc} x ${info.cpu}, Node ${info.node}, commit ${info.commit}`)
  const output = { bench: 'recovery', machine: info, quick, plan, hub: pkg.version }

  if (parts.includes('broadcast')) {
    console.log(`\na) broadcast: ${plan.clients} clients, ${plan.broadcasts} hub.broadcastEvent of a small event at ${plan.rate}/s from node A`)
    const variants = [
      { label: '1 node, memory adapter, recovery off', adapter: 'memory', recovery: false, nodes: 1 },
      { label: '1 node, memory adapter, recovery on', adapter: 'memory', recovery: true, nodes: 1 },
      { label: '1 node, redis adapter, recovery off', adapter: 'redis', recovery: false, nodes: 1 },
      { label: '1 node, redis adapter, recovery on', adapter: 'redis', recovery: true, nodes: 1 },
      { label: '2 nodes, redis adapter, recovery off', adapter: 'redis', recovery: false, nodes: 2 },
      { label: '2 nodes, redis adapter, recovery on', adapter: 'redis', recovery: true, nodes: 2 }
    ].filter((variant) => wanted(variant.label))
    const fleet = await startChild(join(here, 'fleet.js'), 'fleet', {}, 'fleet')
    const rows = []
    try {
      for (const variant of variants) {
        const row = await broadcastCase(variant, plan, redis, fleet)
        console.log(JSON.stringify(row))
        rows.push(row)
      }
    } finally {
      await stopChild(fleet)
    }
    const text = broadcastTable(rows)
    const found = ratios(rows)
    const ratioText = found.map((r) => `${r.nodes} node${r.nodes > 1 ? 's' : ''}, ${r.adapter}: recovery on / off CPU ${r.cpuRatio.toFixed(2)}x (target <= ${r.target}x: ${r.meetsTarget ? 'met' : 'MISSED'}), p99 ${r.p99Ratio.toFixed(2)}x`).join('\n')
    console.log(`\nCPU = hub server processes (user + system, nodes added) per delivery; Redis = Redis CPU per delivery\n${text}\n\n${ratioText}`)
    output.broadcast = rows
    output.broadcastTable = text
    output.ratios = found
  }

  if (parts.includes('replay')) {
    console.log(`\nb) replay: one client misses ${plan.missed} events, then reconnects`)
    const tenfold = plan.missed * 10
    const cases = [
      { label: 'memory (1 process)', adapter: 'memory', maxMessages: tenfold },
      { label: 'memory sendEventTo', adapter: 'memory', maxMessages: tenfold, toClient: true },
      { label: 'memory default maxMessages', adapter: 'memory' },
      { label: 'redis maxMessages 10x', adapter: 'redis', maxMessages: tenfold },
      { label: 'redis default maxMessages', adapter: 'redis' },
      { label: 'redis other node', adapter: 'redis', maxMessages: tenfold, otherNode: true },
      { label: 'redis sendEventTo other node', adapter: 'redis', maxMessages: tenfold, otherNode: true, toClient: true }
    ]
    // the live cases look for a race at the seam: several runs each
    for (let rep = 1; rep <= plan.liveReps; rep++) {
      cases.push({ label: `memory live ${plan.liveRate}/s #${rep}`, adapter: 'memory', maxMessages: tenfold, live: true })
      cases.push({ label: `redis live ${plan.liveRate}/s #${rep}`, adapter: 'redis', maxMessages: tenfold, live: true })
    }
    const rows = []
    for (const replay of cases.filter((c) => wanted(c.label))) {
      const row = await replayCase(replay, plan, redis)
      console.log(JSON.stringify(row))
      rows.push(row)
    }
    const text = replayTable(rows)
    console.log(`\nreplay ms = from the resuming socket's construction to the ${plan.missed}th missed event; srv CPU = the node resumed on, meanwhile\n${text}`)
    output.replay = rows
    output.replayTable = text
  }

  redis.disconnect()
  output.seconds = (Date.now() - began) / 1000
  writeResults(here, quick ? 'recovery-quick' : 'recovery', output)
}

// Last, so that every const above is initialised before either role runs.
if (args.node !== undefined) await runNode(JSON.parse(args.node))
else await main()
