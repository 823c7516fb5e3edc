// The benchmark suite: `npm run bench` (full, a few minutes) or `npm run bench:quick` (smoke run).
// One server process per implementation, one client-fleet process, both forked from here and driven
// over IPC; server CPU is read inside the server process. Options:
//   --quick            small client counts, one repetition
//   --reps=N           repetitions (alternating implementations) of the main scenarios
//   --sizes=a,b        client counts of the main scenarios (ascending; latency rates are set for 1000 and 10000)
//   --impl=a,b         only these implementations (the reference is always kept); `hub-metrics`, the hub
//                      with the `metrics` option on, runs only when named (BENCHMARKS.md "Metrics"); so does
//                      `hub-base`, the hub built in $HUB_BASE_DIST (an older commit's dist/, for A/B in one run)
//   --only=main,typed,stall,heartbeat,idle,two-node   only these scenario groups
//   --idle-ms=N        length of the idle scenario's CPU window (default 40000: two heartbeat intervals)
//   --idle-reps=N      repetitions of the idle scenario (default 2; 1 with --quick)
//   --latency-ms=N     how long each latency measurement sends (default 2000; 500 with --quick)
//   --measure=cpu,latency,memory   in `main`, only these measurements after each connect storm (the
//                      storm, `upgrades`, is always measured: it is how the clients get there)
//   --cpu-prof         run the hub server under `node --cpu-prof` (profiles in bench/results/)
import { execFileSync, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { killChildren, killChildrenOnExit, trackChild } from './children.js'
import { caller } from './ipc.js'
import { cpuUsOf } from './measure.js'
import { reachableRedis } from './redis-admin.js'
import { sleep } from './wait.js'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const flag = (name) => args.includes(`--${name}`)
const valueOf = (name) => args.find((arg) => arg.startsWith(`--${name}=`))?.split('=')[1]
const quick = flag('quick')

const IMPLS = ['ws-loop', 'ws-cork', 'fastify-ws', 'socket.io', 'hub']
const REFERENCE = 'ws-cork'
const LABELS = {
  'ws-loop': 'ws send loop',
  'ws-cork': 'ws frame once + cork (REF)',
  'fastify-ws': '@fastify/websocket loop',
  'socket.io': 'socket.io io.emit',
  hub: 'fastify-ws-hub broadcast',
  'hub-metrics': 'fastify-ws-hub broadcast, metrics on (histograms observed)',
  'hub-base': `fastify-ws-hub broadcast, the build in HUB_BASE_DIST (${process.env.HUB_BASE_DIST ?? 'not set'})`
}
// The typed-messages scenario compares its own three servers, against the untyped hub route
const TYPED_IMPLS = ['hub-json', 'hub-typed', 'socket.io-ack']
const TYPED_REFERENCE = 'hub-json'
const TYPED_LABELS = {
  'hub-json': 'hub untyped route, JSON.parse + switch + checks + JSON.stringify by hand (REF)',
  'hub-typed': 'hub typed route: TypeBox check, handler, reply; broadcastEvent',
  'socket.io-ack': 'socket.io emit with an ack, checks by hand; io.emit'
}
const chosen = valueOf('impl')?.split(',')
const only = (names, reference) => chosen === undefined ? names : names.filter((name) => name === reference || chosen.includes(name))
const impls = only(chosen === undefined ? IMPLS : [...IMPLS, 'hub-metrics', 'hub-base'], REFERENCE)
const typedImpls = only(TYPED_IMPLS, TYPED_REFERENCE)
const groups = valueOf('only')?.split(',') ?? ['main', 'typed', 'stall', 'heartbeat', 'idle', 'two-node']
const measures = valueOf('measure')?.split(',') ?? ['cpu', 'latency', 'memory']

const config0 = quick
  ? { sizes: [100, 500], reps: 1, deliveries: { 1: 10_000, 10: 20_000, rooms: 10_000, warm: 5000 }, roundDeliveries: 10_000, latencyMs: 500, latencyRate: { 100: 50, 500: 20 }, stall: { clients: 20, size: 65_536, rate: 40, ms: 1000 }, heartbeat: { clients: 500, ms: 1200 }, idle: { clients: 500, settleMs: 500, ms: 3000, reps: 1 }, typed: { clients: 100, requests: 10_000, deliveries: 20_000 } }
  : { sizes: [1000, 10_000], reps: 3, deliveries: { 1: 60_000, 10: 200_000, rooms: 60_000, warm: 20_000 }, roundDeliveries: 50_000, latencyMs: 2000, latencyRate: { 1000: 20, 10_000: 2 }, stall: { clients: 50, size: 65_536, rate: 40, ms: 3000 }, heartbeat: { clients: 10_000, ms: 3000 }, idle: { clients: 10_000, settleMs: 3000, ms: 40_000, reps: 2 }, typed: { clients: 1000, requests: 60_000, deliveries: 200_000 } }
const config = { ...config0, sizes: valueOf('sizes')?.split(',').map(Number) ?? config0.sizes }
config.reps = Number(valueOf('reps') ?? config.reps)
config.idle = { ...config.idle, ms: Number(valueOf('idle-ms') ?? config.idle.ms), reps: Number(valueOf('idle-reps') ?? config.idle.reps) }
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
// A longer latency window gives each repetition more broadcasts (at 10k clients, 2 a second)
config.latencyMs = Number(valueOf('latency-ms') ?? config.latencyMs)
/** Broadcasts per second of the latency scenario: a fixed rate well below saturation (20k deliveries/s by default). */
const rateFor = (clients) => config.latencyRate[clients] ?? Math.max(1, Math.round(20_000 / clients))
const MESSAGE_SIZE = 100
const ROOMS = 100
const HUB_MARK = 256 * 1024
const STALL_IMPLS = ['ws-loop', 'ws-cork', 'hub']

killChildrenOnExit()

/** The open-files limit children get; 10k sockets per process need more than the usual 1024. */
function fileLimit () {
  try {
    return Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim())
  } catch {
    return 0
  }
}
const NEEDED_FILES = Math.max(...config.sizes, config.heartbeat.clients, config.idle.clients) + 2048
const raiseLimit = fileLimit() < NEEDED_FILES

/** Starts a child with an IPC channel (through `sh -c 'ulimit -n ...; exec node'` when the limit is low). */
async function start (script, scriptArgs, nodeArgs = []) {
  const node = [...nodeArgs, join(here, script), ...scriptArgs]
  const stdio = ['ignore', 'inherit', 'inherit', 'ipc']
  const quote = (text) => `'${text.replaceAll("'", "'\\''")}'`
  const child = trackChild(raiseLimit
    ? spawn('sh', ['-c', `ulimit -n 65535 2>/dev/null || ulimit -n $(ulimit -Hn); exec ${quote(process.execPath)} ${node.map(quote).join(' ')}`], { stdio })
    : spawn(process.execPath, node, { stdio }))
  await new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)))
    child.on('message', function ready (message) {
      if (message.ready === true) {
        child.off('message', ready)
        resolve()
      }
    })
  })
  return { child, call: caller(child) }
}

async function stop (proc) {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return
  const exited = new Promise((resolve) => proc.child.once('exit', resolve))
  // closing the IPC channel makes the child exit by itself (so --cpu-prof can write its profile)
  if (proc.child.connected) proc.child.disconnect()
  else proc.child.kill('SIGTERM')
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

let stepStart = performance.now()
/** With --verbose, prints how long each step took. */
function step (label) {
  const now = performance.now()
  if (flag('verbose')) console.log(`    ${label}: ${((now - stepStart) / 1000).toFixed(2)} s`)
  stepStart = now
}

async function startServer (impl, options = {}) {
  const nodeArgs = ['--expose-gc']
  if (flag('cpu-prof') && impl === 'hub') nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${join(here, 'results')}`)
  const server = await start('server.js', [impl, JSON.stringify({ rooms: ROOMS, ...options })], nodeArgs)
  server.info = await server.call('info')
  return server
}

async function waitForCount (server, n, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs
  let count = await server.call('count')
  while (count < n && Date.now() < deadline) {
    await sleep(50)
    count = await server.call('count')
  }
  return count
}

async function connect (fleet, server, n, extra = {}) {
  const result = await fleet.call('connect', { n, port: server.info.port, path: server.info.path, protocol: server.info.protocol, ...extra })
  if (result.failed > 0) console.warn(`  ! ${result.failed} of ${n} upgrades failed`)
  return result
}

/** Server CPU per delivered message at the highest rate the closed loop sustains. */
async function throughput (server, fleet, clients, perTurn, mode, deliveries) {
  const perTurnDeliveries = clients * perTurn
  const turns = Math.max(1, Math.round(config.roundDeliveries / perTurnDeliveries))
  const rounds = Math.max(2, Math.ceil(deliveries / (turns * perTurnDeliveries)))
  const base = await fleet.call('received')
  const before = await server.call('cpu')
  const fleetBefore = await fleet.call('cpu')
  let timedOut = false
  for (let round = 1; round <= rounds && !timedOut; round++) {
    await server.call('burst', { turns, perTurn, mode, size: MESSAGE_SIZE })
    const wait = await fleet.call('waitFor', { target: base + round * turns * perTurnDeliveries, timeoutMs: 20_000 })
    timedOut = wait.timedOut
  }
  const after = await server.call('cpu')
  const fleetAfter = await fleet.call('cpu')
  const delivered = (await fleet.call('received')) - base
  const cpu = cpuUsOf(after, before)
  return {
    cpuUsPerMsg: cpu / delivered,
    clientCpuUsPerMsg: cpuUsOf(fleetAfter, fleetBefore) / delivered,
    userShare: (after.user - before.user) / cpu,
    ratePerSec: delivered / ((after.wall - before.wall) / 1e6),
    delivered,
    complete: !timedOut
  }
}

/** Fan-out latency of time-stamped broadcasts at a fixed rate. */
async function latency (server, fleet, clients, rate, size = MESSAGE_SIZE, durationMs = config.latencyMs) {
  const base = await fleet.call('received')
  await fleet.call('latencyStart')
  const { sent } = await server.call('paced', { rate, durationMs, size })
  await fleet.call('waitFor', { target: base + sent * clients, timeoutMs: 10_000 })
  return { rate, ...(await fleet.call('latencyStop')) }
}

const perConnection = (after, before, clients) => ({
  heapBytes: (after.heapUsed - before.heapUsed) / clients,
  rssBytes: (after.rss - before.rss) / clients,
  externalBytes: (after.external - before.external) / clients
})

/** One implementation, one repetition: connect up to each size, then measure at that size. */
async function mainSession (impl, fleet) {
  const server = await startServer(impl)
  const result = { impl }
  try {
    const empty = await server.call('memory')
    let connected = 0
    for (const clients of config.sizes) {
      const at = {}
      result[clients] = at
      step('start')
      const cpuBefore = await server.call('cpu')
      const storm = await connect(fleet, server, clients - connected)
      const cpuAfter = await server.call('cpu')
      step(`connect ${clients}`)
      const serverCpuUs = cpuUsOf(cpuAfter, cpuBefore)
      at.storm = {
        from: connected,
        to: clients,
        upgradesPerSec: (clients - connected) / (storm.ms / 1000),
        serverCpuUsPerUpgrade: serverCpuUs / (clients - connected),
        ms: storm.ms
      }
      connected = await waitForCount(server, clients)
      if (connected !== clients) throw new Error(`${impl}: ${connected} of ${clients} clients registered`)
      await sleep(200)
      if (measures.includes('memory')) {
        at.memory = perConnection(await server.call('memory'), empty, clients)
        step('memory')
      }
      const { deliveries } = config
      if (measures.includes('cpu') || measures.includes('latency')) {
        await throughput(server, fleet, clients, 1, 'all', deliveries.warm) // warm-up, not counted
        step('warm-up')
      }
      if (measures.includes('cpu')) {
        at.cpu1 = await throughput(server, fleet, clients, 1, 'all', deliveries[1])
        step('x1')
        at.cpu10 = await throughput(server, fleet, clients, 10, 'all', deliveries[10])
        step('x10')
        at.rooms = await throughput(server, fleet, clients, 1, 'rooms', deliveries.rooms)
        step('rooms')
      }
      if (measures.includes('latency')) {
        at.latency = await latency(server, fleet, clients, rateFor(clients))
        step('latency')
      }
    }
  } finally {
    await fleet.call('closeAll')
    await stop(server)
  }
  return result
}

// One `say` request as each server's clients send it: the typed wire format (which the untyped
// route parses by hand) or socket.io's event packet with ack id 1. Every request of the run is the
// same frame: the servers echo the id without looking at it.
const SAY = { text: 'hello from the bench, a chat line of an ordinary length' }
const requestText = (impl) => impl.startsWith('socket.io') ? `421${JSON.stringify(['say', SAY])}` : JSON.stringify({ type: 'say', data: SAY, id: 1 })

/** Server CPU per request answered: rounds of one request per client, each round waiting for every reply. */
async function requestRounds (server, fleet, clients, impl, requests) {
  const before = await server.call('cpu')
  const fleetBefore = await fleet.call('cpu')
  const { replies, timedOut } = await fleet.call('requests', { text: requestText(impl), rounds: Math.max(1, Math.round(requests / clients)), timeoutMs: 20_000 })
  const after = await server.call('cpu')
  const fleetAfter = await fleet.call('cpu')
  return {
    cpuUsPerMsg: cpuUsOf(after, before) / replies,
    clientCpuUsPerMsg: cpuUsOf(fleetAfter, fleetBefore) / replies,
    ratePerSec: replies / ((after.wall - before.wall) / 1e6),
    replies,
    complete: !timedOut
  }
}

/** Typed messages in (check, dispatch, reply) and typed events out (serialise once, fan out), one server. */
async function typedSession (impl, fleet) {
  const { clients, requests, deliveries } = config.typed
  const server = await startServer(impl)
  try {
    await connect(fleet, server, clients)
    const connected = await waitForCount(server, clients)
    if (connected !== clients) throw new Error(`${impl}: ${connected} of ${clients} clients registered`)
    await requestRounds(server, fleet, clients, impl, requests / 4) // warm-up, not counted
    const requested = await requestRounds(server, fleet, clients, impl, requests)
    step('typed in')
    await throughput(server, fleet, clients, 1, 'event', deliveries / 4) // warm-up, not counted
    const events = await throughput(server, fleet, clients, 1, 'event', deliveries)
    step('typed out')
    return { impl, in: requested, out: events }
  } finally {
    await fleet.call('closeAll')
    await stop(server)
  }
}

/** A reader that stops reading: does it cost the others anything, and does server memory stay bounded? */
async function stallSession (impl, fleet) {
  const { clients, size, rate, ms } = config.stall
  const server = await startServer(impl, { maxBufferedBytes: HUB_MARK })
  try {
    await connect(fleet, server, clients)
    await waitForCount(server, clients)
    await latency(server, fleet, clients, rate, size, ms / 2) // warm-up
    const before = await server.call('memory')
    const healthy = await latency(server, fleet, clients, rate, size, ms)
    const afterHealthy = await server.call('memoryNow')
    await connect(fleet, server, 1, { stalled: true })
    await waitForCount(server, clients + 1)
    const stalled = await latency(server, fleet, clients, rate, size, ms)
    const afterStalled = await server.call('memoryNow')
    const buffered = await server.call('buffered')
    const stats = await server.call('stats')
    return {
      impl,
      p99Healthy: healthy.p99,
      p99Stalled: stalled.p99,
      maxHealthy: healthy.max,
      maxStalled: stalled.max,
      rssGrowthMB: (afterStalled.rss - afterHealthy.rss) / 2 ** 20,
      arrayBuffersGrowthMB: (afterStalled.arrayBuffers - afterHealthy.arrayBuffers) / 2 ** 20,
      rssBeforeMB: before.rss / 2 ** 20,
      stalledBufferedKB: buffered / 1024,
      dropped: stats?.dropped,
      sentToStalledKB: stalled.n / clients * size / 1024
    }
  } finally {
    await fleet.call('closeAll')
    await stop(server)
  }
}

/** Event-loop delay with 10k idle clients: the hub's heartbeat (interval 1 s) against the alternatives. */
async function heartbeatSession (variant, fleet) {
  const { clients, ms } = config.heartbeat
  const impl = variant.startsWith('hub') ? 'hub' : variant.replace(/ \+.*/, '')
  const options = variant === 'hub + heartbeat 1s' ? { heartbeat: { interval: 1000, maxFailures: 4 } } : {}
  const server = await startServer(impl, options)
  try {
    await connect(fleet, server, clients)
    await waitForCount(server, clients)
    await sleep(500)
    if (variant.endsWith('ping loop 1s')) await server.call('pingLoop', { intervalMs: 1000 })
    const pongsBefore = await fleet.call('pongs')
    const delay = await server.call('eventLoopDelay', { durationMs: ms })
    const pings = (await fleet.call('pongs')) - pongsBefore
    const stats = await server.call('stats')
    return { variant, ...delay, pingsAnswered: pings, heartbeatTimeouts: stats?.heartbeatTimeouts, stillOpen: await server.call('count') }
  } finally {
    await fleet.call('closeAll')
    await stop(server)
  }
}

/**
 * The idle scenario's servers: what an idle node costs with its liveness machinery at its defaults.
 * The hub with its default heartbeat (a ping every 20 s) and read timeout, alone and on the Redis
 * adapter (lease, stall watch, room subscriptions); socket.io with its own ping (every 25 s); a
 * plain ws server that pings nobody (the floor: what idle sockets cost when nothing runs).
 */
const IDLE_VARIANTS = [
  { name: 'ws, no ping', impl: 'ws-loop', options: {} },
  { name: 'socket.io, ping 25 s', impl: 'socket.io', options: {} },
  { name: 'hub, heartbeat 20 s', impl: 'hub', options: { hubDefaults: true } },
  { name: 'hub + redis, hb 20 s', impl: 'hub-redis', options: { hubDefaults: true } },
  { name: 'hub, heartbeat off', impl: 'hub', options: { hubDefaults: true, heartbeat: false } }
]
const IDLE_CPU_REFERENCE = 'socket.io, ping 25 s'
const IDLE_HEAP_REFERENCE = 'ws, no ping'

/**
 * One idle server: heap and RSS per connection after full GCs with N idle clients (minus none),
 * then its CPU over a window in which the clients only answer pings.
 */
async function idleSession (variant, fleet) {
  const { clients, settleMs, ms } = config.idle
  const options = variant.impl === 'hub-redis' ? { ...variant.options, redisUrl: REDIS_URL, redisPrefix: `bench-idle-${randomUUID()}` } : variant.options
  const server = await startServer(variant.impl, options)
  try {
    const empty = await server.call('memory')
    await connect(fleet, server, clients)
    const connected = await waitForCount(server, clients)
    if (connected !== clients) throw new Error(`${variant.name}: ${connected} of ${clients} clients registered`)
    await sleep(settleMs)
    const memory = perConnection(await server.call('memory'), empty, clients)
    await sleep(1000)
    const pongsBefore = await fleet.call('pongs')
    const before = await server.call('cpu')
    const fleetBefore = await fleet.call('cpu')
    await sleep(ms)
    const after = await server.call('cpu')
    const fleetAfter = await fleet.call('cpu')
    const pings = (await fleet.call('pongs')) - pongsBefore
    const seconds = (after.wall - before.wall) / 1e6
    const resources = await server.call('resources')
    return {
      variant: variant.name,
      cpuMsPerSec: cpuUsOf(after, before) / 1000 / seconds,
      clientCpuMsPerSec: cpuUsOf(fleetAfter, fleetBefore) / 1000 / seconds,
      pingsPerSec: pings / seconds,
      heapBytes: memory.heapBytes,
      rssBytes: memory.rssBytes,
      timers: resources.Timeout ?? 0,
      immediates: resources.Immediate ?? 0,
      stillOpen: await server.call('count')
    }
  } finally {
    await fleet.call('closeAll')
    await stop(server)
  }
}

function idleTable (sessions, variants) {
  const perVariant = (name, pick) => median(sessions.filter((s) => s.variant === name).map(pick))
  const cpuRef = perVariant(IDLE_CPU_REFERENCE, (s) => s.cpuMsPerSec)
  const heapRef = perVariant(IDLE_HEAP_REFERENCE, (s) => s.heapBytes)
  const columns = ['CPU ms/s', 'x socket.io', 'pings/s', 'heap/conn KB', 'x ws', 'rss/conn KB', 'timers', 'client ms/s', 'open']
  const lines = [pad('variant', 24, true) + columns.map((h) => pad(h, 13)).join('')]
  for (const { name } of variants) {
    const cpu = perVariant(name, (s) => s.cpuMsPerSec)
    const heap = perVariant(name, (s) => s.heapBytes)
    lines.push(pad(name, 24, true) + [
      format(cpu, 3), cpuRef ? `${(cpu / cpuRef).toFixed(2)}x` : '-', format(perVariant(name, (s) => s.pingsPerSec), 0),
      format(heap / 1024, 2), heapRef ? `${(heap / heapRef).toFixed(2)}x` : '-', format(perVariant(name, (s) => s.rssBytes) / 1024, 2),
      format(perVariant(name, (s) => s.timers), 0), format(perVariant(name, (s) => s.clientCpuMsPerSec), 1), format(perVariant(name, (s) => s.stillOpen), 0)
    ].map((cell) => pad(cell, 13)).join(''))
  }
  lines.push('', 'per repetition (CPU ms/s, heap/conn KB):')
  for (const { name } of variants) {
    const own = sessions.filter((s) => s.variant === name)
    lines.push(`  ${pad(name, 22, true)} ${own.map((s) => `${s.cpuMsPerSec.toFixed(3)} / ${(s.heapBytes / 1024).toFixed(2)}`).join(', ')}`)
  }
  return lines.join('\n')
}

async function twoNode () {
  const script = join(here, 'two-node.js')
  if (!existsSync(script)) return { skipped: 'bench/two-node.js does not exist' }
  return new Promise((resolve) => {
    const child = trackChild(spawn(process.execPath, [script, '--quick'], { stdio: ['ignore', 'pipe', 'pipe'] }))
    let output = ''
    child.stdout.on('data', (data) => { output += data })
    child.stderr.on('data', (data) => { output += data })
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ exitCode: code, signal, output: output.trim() })
    })
  })
}

const median = (values) => {
  const known = values.filter((value) => typeof value === 'number' && Number.isFinite(value)).sort((a, b) => a - b)
  if (known.length === 0) return null
  const middle = known.length >> 1
  return known.length % 2 === 1 ? known[middle] : (known[middle - 1] + known[middle]) / 2
}

function format (value, digits) {
  if (value === null || value === undefined) return '-'
  return value.toFixed(digits)
}

function pad (text, width, left = false) {
  return left ? text.padEnd(width) : text.padStart(width)
}

/**
 * Medians over repetitions, then one table row per metric with each implementation's ratio to the reference.
 * @param metrics `[label, pick(session), digits, unit]` each
 */
function ratioTable (sessions, names, reference, metrics) {
  const rows = metrics.map(([label, pick, digits, unit]) => ({
    label: `${label}${unit === '' ? '' : ` (${unit})`}`,
    values: Object.fromEntries(names.map((impl) => [impl, median(sessions.filter((s) => s.impl === impl).map(pick))])),
    digits
  }))
  const width = 14
  const header = pad('metric', 30, true) + names.map((impl) => pad(impl === reference ? `${impl}*` : impl, width)).join('')
  const lines = [header, '-'.repeat(header.length)]
  for (const row of rows) {
    const base = row.values[reference]
    const cells = names.map((impl) => pad(format(row.values[impl], row.digits), width))
    const ratios = names.map((impl) => {
      const value = row.values[impl]
      if (value === null || !base) return pad('', width)
      return pad(`${(value / base).toFixed(2)}x`, width)
    })
    lines.push(pad(row.label, 30, true) + cells.join(''))
    lines.push(pad('  ratio to ref', 30, true) + ratios.join(''))
  }
  return { lines, rows }
}

/** The main scenarios' table. */
function table (sessions) {
  const metrics = []
  const metric = (label, pick, digits, unit) => metrics.push([label, pick, digits, unit])
  for (const clients of config.sizes) {
    const k = clients >= 1000 ? `${clients / 1000}k` : String(clients)
    metric(`CPU/msg ${k} x1`, (s) => s[clients]?.cpu1?.cpuUsPerMsg, 3, 'us')
    metric(`CPU/msg ${k} x10`, (s) => s[clients]?.cpu10?.cpuUsPerMsg, 3, 'us')
    metric(`CPU/msg ${k} rooms`, (s) => s[clients]?.rooms?.cpuUsPerMsg, 3, 'us')
    metric(`client CPU/msg ${k} x1`, (s) => s[clients]?.cpu1?.clientCpuUsPerMsg, 3, 'us')
    metric(`rate ${k} x1`, (s) => s[clients]?.cpu1?.ratePerSec / 1000, 0, 'k msg/s')
    metric(`rate ${k} x10`, (s) => s[clients]?.cpu10?.ratePerSec / 1000, 0, 'k msg/s')
    metric(`latency ${k} p50 @${rateFor(clients)}/s`, (s) => s[clients]?.latency?.p50, 1, 'ms')
    metric(`latency ${k} p99 @${rateFor(clients)}/s`, (s) => s[clients]?.latency?.p99, 1, 'ms')
    metric(`latency ${k} max @${rateFor(clients)}/s`, (s) => s[clients]?.latency?.max, 1, 'ms')
    metric(`heap/conn ${k}`, (s) => s[clients]?.memory?.heapBytes / 1024, 2, 'KB')
    metric(`rss/conn ${k}`, (s) => s[clients]?.memory?.rssBytes / 1024, 2, 'KB')
  }
  const last = config.sizes.at(-1)
  const first = config.sizes[0]
  metric(`upgrades ${config.sizes.length > 1 ? first : 0}->${last}`, (s) => s[last]?.storm.upgradesPerSec, 0, '/s')
  metric(`server CPU/upgrade ${config.sizes.length > 1 ? first : 0}->${last}`, (s) => s[last]?.storm.serverCpuUsPerUpgrade, 0, 'us')
  const { lines, rows } = ratioTable(sessions, impls, REFERENCE, metrics)
  lines.push('', ...impls.map((impl) => `${impl.padEnd(12)} ${LABELS[impl]}`))
  return { text: lines.join('\n'), rows }
}

/** The typed-messages scenario's table: CPU per request in and per delivery out, against the untyped route. */
function typedTable (sessions) {
  const { lines, rows } = ratioTable(sessions, typedImpls, TYPED_REFERENCE, [
    ['CPU/msg in', (s) => s.in.cpuUsPerMsg, 3, 'us'],
    ['CPU/delivery out', (s) => s.out.cpuUsPerMsg, 3, 'us'],
    ['client CPU/msg in', (s) => s.in.clientCpuUsPerMsg, 3, 'us'],
    ['rate in', (s) => s.in.ratePerSec / 1000, 1, 'k msg/s'],
    ['rate out', (s) => s.out.ratePerSec / 1000, 0, 'k msg/s']
  ])
  lines.push('', ...typedImpls.map((impl) => `${impl.padEnd(14)} ${TYPED_LABELS[impl]}`))
  return { text: lines.join('\n'), rows }
}

function stallTable (results) {
  const lines = [pad('impl', 14, true) + ['p99 ok ms', 'p99 stall ms', 'max stall ms', 'rss +MB', 'buffers +MB', 'stalled buf KB', 'dropped'].map((h) => pad(h, 15)).join('')]
  for (const r of results) {
    lines.push(pad(r.impl, 14, true) + [
      format(r.p99Healthy, 1), format(r.p99Stalled, 1), format(r.maxStalled, 1), format(r.rssGrowthMB, 1),
      format(r.arrayBuffersGrowthMB, 1), format(r.stalledBufferedKB, 0), r.dropped === undefined ? '-' : String(r.dropped)
    ].map((cell) => pad(cell, 15)).join(''))
  }
  return lines.join('\n')
}

function heartbeatTable (results) {
  const lines = [pad('variant', 30, true) + ['max delay ms', 'probe max ms', 'p99 ms', 'mean ms', 'pings', 'open'].map((h) => pad(h, 14)).join('')]
  for (const r of results) {
    lines.push(pad(r.variant, 30, true) + [
      format(r.maxMs, 1), format(r.probeMaxMs, 1), format(r.p99Ms, 1), format(r.meanMs, 2), String(r.pingsAnswered), String(r.stillOpen)
    ].map((cell) => pad(cell, 14)).join(''))
  }
  return lines.join('\n')
}

function machine () {
  const cpus = os.cpus()
  let commit = process.env.BENCH_COMMIT ?? 'unknown'
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: here, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'lib'], { cwd: here, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    if (dirty !== '') commit += ' (lib/ modified)'
  } catch {}
  return { nproc: os.availableParallelism(), cpu: cpus[0]?.model ?? 'unknown', node: process.version, platform: `${os.type()} ${os.release()}`, memoryGB: Math.round(os.totalmem() / 2 ** 30), commit }
}

async function main () {
  const began = Date.now()
  const info = machine()
  console.log(`fastify-ws-hub bench${quick ? ' (quick)' : ''}: ${info.nproc} x ${info.cpu}, Node ${info.node}, commit ${info.commit}, open-files limit ${fileLimit()}${raiseLimit ? ' (children raise it)' : ''}`)
  console.log(`sizes ${config.sizes.join(', ')} clients; ${config.reps} alternating repetition(s); ${MESSAGE_SIZE}-byte text messages; reference = ${REFERENCE}\n`)
  const fleet = await start('fleet.js', [])
  const output = { machine: info, quick, config, startedAt: new Date(began).toISOString() }
  try {
    if (groups.includes('main')) {
      const sessions = []
      for (let rep = 0; rep < config.reps; rep++) {
        // rotate the order so that no implementation always runs first (or last)
        const order = impls.map((_, i) => impls[(i + rep) % impls.length])
        for (const impl of order) {
          const t = Date.now()
          sessions.push(await mainSession(impl, fleet))
          console.log(`  rep ${rep + 1}/${config.reps} ${impl}: ${((Date.now() - t) / 1000).toFixed(1)} s`)
        }
      }
      const { text, rows } = table(sessions)
      console.log(`\nMedians of ${config.reps} repetition(s); * = reference; CPU = server user+system per delivered message\n`)
      console.log(text)
      output.sessions = sessions
      output.medians = rows
      output.table = text
    }
    if (groups.includes('typed')) {
      const sessions = []
      for (let rep = 0; rep < config.reps; rep++) {
        const order = typedImpls.map((_, i) => typedImpls[(i + rep) % typedImpls.length])
        for (const impl of order) sessions.push(await typedSession(impl, fleet))
      }
      const { text, rows } = typedTable(sessions)
      const { clients } = config.typed
      console.log(`\nTyped messages: ${clients} clients; in = rounds of one \`say\` request per client, each answered with a reply; ` +
        `out = one \`said\` event per turn to all ${clients}. Medians of ${config.reps}; * = reference; CPU = server user+system\n`)
      console.log(text)
      output.typed = { sessions, medians: rows, table: text }
    }
    if (groups.includes('stall')) {
      const results = []
      for (const impl of impls.filter((name) => STALL_IMPLS.includes(name))) results.push(await stallSession(impl, fleet))
      const text = stallTable(results)
      const { clients, size, rate } = config.stall
      console.log(`\nStalled reader: ${clients} clients, ${size}-byte messages at ${rate}/s, then one raw socket that never reads (hub maxBufferedBytes ${HUB_MARK / 1024} KiB)\n`)
      console.log(text)
      output.stall = results
      output.stallTable = text
    }
    if (groups.includes('heartbeat')) {
      const variants = ['hub, heartbeat off', 'hub + heartbeat 1s', 'ws-loop + ping loop 1s'].filter((v) => impls.some((impl) => v.startsWith(impl)))
      const results = []
      for (const variant of variants) results.push(await heartbeatSession(variant, fleet))
      const text = heartbeatTable(results)
      console.log(`\nEvent-loop delay over ${config.heartbeat.ms / 1000} s with ${config.heartbeat.clients} idle clients (clients answer pings)\n`)
      console.log(text)
      output.heartbeat = results
      output.heartbeatTable = text
    }
    if (groups.includes('idle')) {
      const { Redis } = await import('ioredis')
      const redis = await reachableRedis(Redis, REDIS_URL)
      redis?.disconnect()
      if (redis === undefined) console.log(`\nidle: no Redis at ${REDIS_URL} (set REDIS_URL): the hub + redis variant is left out`)
      const variants = IDLE_VARIANTS.filter((v) => (redis !== undefined || v.impl !== 'hub-redis') && (chosen === undefined || chosen.includes(v.impl) || [IDLE_CPU_REFERENCE, IDLE_HEAP_REFERENCE].includes(v.name) || (v.impl === 'hub-redis' && chosen.includes('hub'))))
      const sessions = []
      for (let rep = 0; rep < config.idle.reps; rep++) {
        const order = variants.map((_, i) => variants[(i + rep) % variants.length])
        for (const variant of order) {
          const t = Date.now()
          sessions.push(await idleSession(variant, fleet))
          step(`idle ${variant.name}`)
          if (flag('verbose')) console.log(`  idle rep ${rep + 1}/${config.idle.reps} ${variant.name}: ${((Date.now() - t) / 1000).toFixed(1)} s`)
        }
      }
      const text = idleTable(sessions, variants)
      const { clients, ms, reps } = config.idle
      console.log(`\nIdle cost: ${clients} idle clients that answer pings; server CPU over ${ms / 1000} s (ms of CPU per second), ` +
        `heap and RSS per connection after full GCs; medians of ${reps}; timers = active Timeout handles\n`)
      console.log(text)
      output.idle = { sessions, table: text }
    }
    if (groups.includes('two-node') && !quick) {
      output.twoNode = await twoNode()
      console.log('\nbench/two-node.js --quick:', output.twoNode.skipped ?? `exit ${output.twoNode.exitCode ?? output.twoNode.signal}\n${output.twoNode.output}`)
    }
  } finally {
    await stop(fleet)
  }
  output.seconds = (Date.now() - began) / 1000
  mkdirSync(join(here, 'results'), { recursive: true })
  writeFileSync(join(here, 'results', quick ? 'quick.json' : 'latest.json'), JSON.stringify(output, null, 2) + '\n')
  console.log(`\ndone in ${output.seconds.toFixed(0)} s; results in bench/results/${quick ? 'quick' : 'latest'}.json`)
}

main().catch((error) => {
  console.error(error)
  killChildren()
  process.exitCode = 1
})
