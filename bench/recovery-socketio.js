// socket.io's side of the session-recovery comparison: what socket.io 4.8's connectionStateRecovery
// costs on the broadcast path, and how long it takes to replay missed events to a client that
// comes back. Needs a Redis at REDIS_URL (default redis://127.0.0.1:6379); no build needed.
//
//   node bench/recovery-socketio.js [--quick] [--clients N] [--broadcasts N] [--rate N] [--missed N]
//                                   [--live-reps N] [--live-rate N] [--only=broadcast,replay]
//
// Defaults: 200 clients, 1000 broadcasts at 100/s, 10,000 missed, 5 runs of each live case;
// --quick: 100 clients, 300 broadcasts, 2,000 missed, 2 runs. About 2 minutes, 45 s quick.
//
// Every socket.io server is a child process (this file with --node), over its websocket transport
// only, no permessage-deflate. Variants (the `adapter` of each node):
//   none     socket.io's default in-memory adapter, recovery off
//   memory   recovery on with no Redis: socket.io's in-memory SessionAwareAdapter (one process only)
//   classic  @socket.io/redis-adapter (Redis pub/sub), recovery off: the usual multi-node setup
//   streams  @socket.io/redis-streams-adapter (XADD per broadcast, nodes XREAD the stream; sessions
//            stored in Redis with SET PX), recovery on or off
// Every run uses its own stream name, session key prefix and channel prefix, and deletes the stream
// and any session keys left (sessions of the fleet's clients) at the end.
//
// a) broadcast: `clients` clients (bench/fleet.js, the raw-socket fleet of run.js, in one process)
//    connected to one node, or split in halves over two nodes sharing Redis; node A io.emit()s
//    `broadcasts` small JSON events ({ t: send time µs, s: seq, p: 40 bytes }) paced at `rate`/s,
//    after a warm-up of 100 not counted. Per variant: server CPU (user + system, both nodes added)
//    per delivery over the paced window, Redis CPU per delivery (INFO cpu), fan-out latency
//    p50/p99/max (send stamp in node A's CLOCK_MONOTONIC, read by the fleet on arrival), loss.
//    With recovery on, every broadcast carries its offset (its stream id, or a packet id in
//    memory) as a last argument: the frames grow by ~20 bytes.
// b) replay: one socket.io-client (this process, reconnection off so that the bench says when it
//    reconnects). It connects, receives one event (socket.io recovers only from the offset of the
//    last broadcast the client got: a client that got none cannot recover), then its engine is closed
//    (a transport close, a recoverable reason: the server persists the session). The node emits
//    `missed` events (seq 1..missed) to all, and the bench waits for Redis to have them all (a PING
//    on the adapter's connection after the last XADD). Then socket.connect(): measured from that call
//    to the arrival of the `missed`th missed event; every event is checked (count, order, no
//    duplicate), and socket.recovered read. Also the server CPU of the replay. Cases:
//      memory                    in-memory adapter, one process
//      streams maxLen 10x        streams adapter with maxLen = 10 * missed
//      streams default maxLen    maxLen left at the adapter's default, 10,000 (MAXLEN ~, approximate
//                                trimming): does a gap of exactly 10,000 still fit?
//      streams other node        disconnected from node A, reconnected to node B (the session and
//                                the stream are in Redis); maxLen 10x
//      memory/streams live #i    (streams: maxLen 10x) and node A keeps emitting at 100/s (--live-rate) from the
//                                reconnect on for 1.5 s: are events emitted between the replay read
//                                (XRANGE, or the in-memory packet list) and the socket's joining its
//                                rooms lost or doubled? (the check covers seq 1..the last live one)
//                                Seen here: with the streams adapter, now and then a run of live
//                                events is lost while socket.recovered is true (73 in a row once at
//                                --live-rate=2000, 1 once at 100/s); never with the memory adapter.
//      A gap longer than maxLen (try --missed=10200 with the default maxLen): the offset is trimmed
//      away, and the client silently gets a new session (recovered false) and none of the events.
//
// Prints a table per part and one JSON line per measurement ({"bench":"recovery-socketio",...}),
// then one JSON line with everything, also written to bench/results/recovery-socketio(-quick).json.
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
const SIO_PATH = '/socket.io/?EIO=4&transport=websocket'
const PADDING = 'x'.repeat(40)

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
    only: { type: 'string' }
  }
})

/**
 * A socket.io node: its adapter and recovery setting from `cfg`, and the IPC calls the driver uses.
 * @param {{ adapter: 'none' | 'memory' | 'classic' | 'streams', recovery: boolean, name: string, maxLen?: number }} cfg
 */
async function runNode (cfg) {
  const http = await import('node:http')
  const { Server } = await import('socket.io')
  const { Redis } = await import('ioredis')
  const options = { transports: ['websocket'], serveClient: false, perMessageDeflate: false }
  if (cfg.recovery) options.connectionStateRecovery = { maxDisconnectionDuration: 120_000, skipMiddlewares: true }
  /** The connection the adapter publishes on: a PING on it answers after every XADD sent before. */
  let publisher
  const redisClients = []
  if (cfg.adapter === 'streams') {
    const { createAdapter } = await import('@socket.io/redis-streams-adapter')
    publisher = new Redis(REDIS_URL)
    redisClients.push(publisher)
    const streamOptions = { streamName: cfg.name, sessionKeyPrefix: `${cfg.name}:session:`, channelPrefix: cfg.name }
    if (cfg.maxLen !== undefined) streamOptions.maxLen = cfg.maxLen
    options.adapter = createAdapter(publisher, streamOptions)
  } else if (cfg.adapter === 'classic') {
    const { createAdapter } = await import('@socket.io/redis-adapter')
    publisher = new Redis(REDIS_URL)
    const subscriber = publisher.duplicate()
    redisClients.push(publisher, subscriber)
    options.adapter = createAdapter(publisher, subscriber, { key: cfg.name })
  }
  const server = http.createServer()
  const io = new Server(server, options)
  let recovered = 0
  io.on('connection', (socket) => { if (socket.recovered) recovered++ })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))

  let seq = 0
  const emit = () => io.emit('m', { t: Math.round(nowMicros()), s: ++seq, p: PADDING })
  const flush = async () => { if (publisher !== undefined) await publisher.ping() }
  let live
  serve({
    cpu: () => process.cpuUsage(),
    clock: () => nowMicros(),
    count: () => io.of('/').sockets.size,
    recovered: () => recovered,
    seq: () => seq,
    /** `count` emits paced at `rate`/s (a late timer catches up, so the rate offered holds). */
    async paced ({ rate, count }) {
      const paced = await pacedEmits(emit, rate, count)
      await flush()
      return paced
    },
    /** `count` emits at once, then waits until Redis has them all. */
    async burst ({ count }) {
      const started = performance.now()
      for (let i = 0; i < count; i++) emit()
      await flush()
      return { first: seq - count + 1, last: seq, ms: performance.now() - started }
    },
    /** Emits at `rate`/s until `liveStop`. */
    liveStart ({ rate }) {
      // every 10 ms, the emits due by then
      const started = performance.now()
      const first = seq
      live = setInterval(() => {
        const due = Math.floor((performance.now() - started) * rate / 1000)
        for (let n = due - (seq - first); n > 0; n--) emit()
      }, 10)
      return seq
    },
    async liveStop () {
      clearInterval(live)
      await flush()
      return seq
    },
    async close () {
      io.close()
      for (const client of redisClients) client.disconnect()
      return true
    }
  })
  process.send({ ready: true, port: server.address().port })
}

/** Starts a node; `label` names it in errors. */
function startNode (cfg, label) {
  return startChild(self, 'node', cfg, label)
}

/** Part a: one broadcast variant, on `nodeCount` nodes; node A emits. */
async function broadcastCase (variant, plan, redis, fleet) {
  const name = `sio-recovery-bench:${randomUUID()}`
  const nodes = []
  try {
    for (let i = 0; i < variant.nodes; i++) nodes.push(await startNode({ adapter: variant.adapter, recovery: variant.recovery, name }, `node ${'AB'[i]}`))
    await connectFleet(fleet, nodes, plan.clients, { path: SIO_PATH, protocol: 'socket.io' })
    const base = { bench: 'recovery-socketio', part: 'broadcast', variant: variant.label, adapter: variant.adapter, recovery: variant.recovery, nodes: variant.nodes }
    return { ...base, ...await measureBroadcasts(variant.label, nodes, fleet, redis, plan) }
  } finally {
    await fleet.call('closeAll')
    for (const node of nodes) await stopChild(node)
    await cleanRedis(redis, name)
  }
}

/**
 * A socket.io-client that records every `m` event's seq, with reconnection off.
 * @param {string} url
 */
async function replayClient (url) {
  const { io } = await import('socket.io-client')
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true })
  const seqs = []
  let onEvent = () => {}
  socket.on('m', (payload) => {
    seqs.push(payload.s)
    onEvent()
  })
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('connect_error', reject)
  })
  return { socket, seqs, setOnEvent (fn) { onEvent = fn } }
}

/** Part b: one replay case. */
async function replayCase (replay, plan, redis) {
  const name = `sio-recovery-bench:${randomUUID()}`
  const nodes = []
  let client
  try {
    const cfg = { adapter: replay.adapter, recovery: true, name, maxLen: replay.maxLen }
    nodes.push(await startNode(cfg, 'node A'))
    if (replay.otherNode) nodes.push(await startNode(cfg, 'node B'))
    const a = nodes[0]
    const back = nodes.at(-1)
    if (replay.adapter === 'streams') await sleep(300) // the adapter's XREAD loop starts at '$' once its client is up
    client = await replayClient(`http://127.0.0.1:${a.port}`)
    // One event before the cut, so that the client has an offset to recover from.
    await a.call('burst', { count: 1 })
    if (!(await until(() => client.seqs.length === 1, 5000))) throw new Error('the first event did not arrive')
    const before = client.seqs.length

    client.socket.io.engine.close() // a transport close: recoverable, the server persists the session
    if (!(await until(async () => (await a.call('count')) === 0, 5000, 20))) throw new Error('the server did not see the disconnection')
    const burst = await a.call('burst', { count: plan.missed })

    if (replay.otherNode) client.socket.io.uri = `http://127.0.0.1:${back.port}` // the manager's next engine goes to node B
    const wanted = before + plan.missed
    let doneAt
    client.setOnEvent(() => { if (doneAt === undefined && client.seqs.length >= wanted) doneAt = performance.now() })
    const cpuBefore = await back.call('cpu')
    let connectedAt
    client.socket.once('connect', () => { connectedAt = performance.now() })
    let liveFirst
    if (replay.live) liveFirst = (await a.call('liveStart', { rate: plan.liveRate })) + 1
    const started = performance.now()
    client.socket.connect()
    await until(() => doneAt !== undefined, 30_000)
    const cpuAfter = await back.call('cpu')
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
      bench: 'recovery-socketio',
      part: 'replay',
      case: replay.label,
      adapter: replay.adapter,
      maxLen: replay.maxLen ?? (replay.adapter === 'streams' ? 'default (10000)' : undefined),
      missed: plan.missed,
      recovered: client.socket.recovered,
      recoveredOnServer: await back.call('recovered'),
      publishMs: burst.ms,
      connectMs: connectedAt === undefined ? null : connectedAt - started,
      replayMs: doneAt === undefined ? null : doneAt - started,
      serverCpuMs: cpuUsOf(cpuAfter, cpuBefore) / 1000,
      received: replayed.length,
      ...check
    }
    if (replay.live) Object.assign(row, { liveFrom: liveFirst, liveTo: liveLast, liveEvents: liveLast - liveFirst + 1 })
    return row
  } finally {
    client?.socket.disconnect()
    for (const node of nodes) await stopChild(node)
    await cleanRedis(redis, name)
  }
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
  const { Redis } = await import('ioredis')
  const redis = await reachableRedis(Redis, REDIS_URL)
  if (redis === undefined) {
    console.error(`recovery-socketio bench: no Redis at ${REDIS_URL} (set REDIS_URL)`)
    process.exit(1)
  }
  killChildrenOnExit()
  const began = Date.now()
  const info = machineInfo(here)
  const { version } = createRequire(import.meta.url)('socket.io/package.json')
  console.log(`recovery-socketio bench${quick ? ' (quick)' : ''}: socket.io ${version}, ${info.nproc} x ${info.cpu}, Node ${info.node}, commit ${info.commit}`)
  const output = { bench: 'recovery-socketio', machine: info, quick, plan, socketIo: version }

  if (parts.includes('broadcast')) {
    console.log(`\na) broadcast: ${plan.clients} clients, ${plan.broadcasts} io.emit of a small JSON event at ${plan.rate}/s from node A`)
    const variants = [
      { label: '1 node, no adapter, recovery off', adapter: 'none', recovery: false, nodes: 1 },
      { label: '1 node, in-memory recovery on', adapter: 'memory', recovery: true, nodes: 1 },
      { label: '1 node, classic redis-adapter, off', adapter: 'classic', recovery: false, nodes: 1 },
      { label: '1 node, streams adapter, recovery on', adapter: 'streams', recovery: true, nodes: 1 },
      { label: '2 nodes, classic redis-adapter, off', adapter: 'classic', recovery: false, nodes: 2 },
      { label: '2 nodes, streams adapter, recovery off', adapter: 'streams', recovery: false, nodes: 2 },
      { label: '2 nodes, streams adapter, recovery on', adapter: 'streams', recovery: true, nodes: 2 }
    ]
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
    console.log(`\nCPU = socket.io server processes (user + system, nodes added) per delivery; Redis = Redis CPU per delivery\n${text}`)
    output.broadcast = rows
    output.broadcastTable = text
  }

  if (parts.includes('replay')) {
    console.log(`\nb) replay: one client misses ${plan.missed} events, then reconnects`)
    const cases = [
      { label: 'memory (1 process)', adapter: 'memory' },
      { label: 'streams maxLen 10x', adapter: 'streams', maxLen: plan.missed * 10 },
      { label: 'streams default maxLen', adapter: 'streams' },
      { label: 'streams other node', adapter: 'streams', maxLen: plan.missed * 10, otherNode: true },
    ]
    // the live cases look for a race: several runs each
    for (let rep = 1; rep <= plan.liveReps; rep++) {
      cases.push({ label: `memory live ${plan.liveRate}/s #${rep}`, adapter: 'memory', live: true })
      cases.push({ label: `streams live ${plan.liveRate}/s #${rep}`, adapter: 'streams', maxLen: plan.missed * 10, live: true })
    }
    const rows = []
    for (const replay of cases) {
      const row = await replayCase(replay, plan, redis)
      console.log(JSON.stringify(row))
      rows.push(row)
    }
    const text = replayTable(rows)
    console.log(`\nreplay ms = from socket.connect() to the ${plan.missed}th missed event; srv CPU = the reconnected node's CPU meanwhile\n${text}`)
    output.replay = rows
    output.replayTable = text
  }

  redis.disconnect()
  output.seconds = (Date.now() - began) / 1000
  writeResults(here, quick ? 'recovery-socketio-quick' : 'recovery-socketio', output)
}

// Last, so that every const above is initialised before either role runs.
if (args.node !== undefined) await runNode(JSON.parse(args.node))
else await main()
