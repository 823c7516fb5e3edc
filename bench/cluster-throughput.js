// Room-broadcast throughput on a Redis Cluster of 1 master against 3 masters: the highest offered
// rate of room broadcasts whose delivery latency p99 stays under 100 ms with nothing lost.
// Target (the issue): 3 masters carry at least 2.5x what one carries.
//
//   node bench/cluster-throughput.js [--quick] [--masters 1,3] [--mode hub|redis|both] [--seconds S]
//                                    [--nodes K] [--clients C] [--rooms R] [--max-rate N]
//                                    [--start-rate N] [--refine N] [--subscribers N] [--generator ioredis|raw]
//
// Run `npm run build` first (the hub is this worktree's dist/). Needs redis-server (7.0 or later)
// and redis-cli on PATH: every cluster is made of redis-server children of this process, on free
// loopback ports, with their files in a temp dir; all are killed (and the dir removed) at the end,
// on SIGINT/SIGTERM and on exit. A 1-master cluster is made by hand (one node, CLUSTER ADDSLOTSRANGE
// 0 16383), since `redis-cli --cluster create` wants 3 masters at least; 3 or more with redis-cli.
//
// Two modes, each run on a cluster of every master count asked for:
//
// hub: K hub nodes (child processes, this file with --node) on the cluster through
//   `redisAdapter({ cluster, prefix })`, which gives every room its own sharded channel
//   (`<prefix>:db0:room:{<room>}`, SPUBLISH/SSUBSCRIBE), so rooms spread over the masters' slots.
//   C clients per node (raw `ws`, no permessage-deflate, all in this process) in R rooms; room i
//   lives on node i % K (all of its members are clients of that node). Each node, paced over IPC,
//   broadcasts to rooms drawn at random among the rooms of the OTHER nodes: every broadcast crosses
//   Redis (with K = 1, among all rooms). Payloads are 100 bytes and carry the node's
//   process.hrtime (CLOCK_MONOTONIC; the clock offsets are checked over IPC as in rooms.js).
//
// redis: Redis alone, with no hub: K loader processes (ioredis Cluster, enableAutoPipelining), each
//   SPUBLISHing paced 100-byte payloads to random room channels (the hub's names) across the slots,
//   and N subscriber processes (ioredis Cluster with shardedSubscribers: true, SSUBSCRIBE), room i
//   subscribed by subscriber i % N, so that every message is received once (as in hub mode, where
//   each room channel has one subscribing node) and its latency measured. An ioredis Cluster client
//   costs its process several times the CPU that Redis spends on the SPUBLISH, so with few cores the
//   loaders saturate long before Redis: `--generator raw` makes loaders that write pre-encoded RESP
//   once per turn to a plain socket per master (routed by the slot map) and subscribers that read
//   the pushes with a minimal RESP parser, to push Redis further with the same cores.
//
// Defaults: K = 2, C = 500 (quick 200), R = 200, N = 2, S = 5 (quick 2), start rates 2000/s (hub) and
// 8000/s (redis), max rate 512000/s, 2 refinements (quick 1).
//
// Every mode ramps the offered rate (broadcasts or SPUBLISHes per second, in all) by doubling from
// the start rate, each step S seconds, until a step fails; then refines between the last passing
// and the first failing rate by geometric bisection. A step passes when p99 < 100 ms, nothing is
// lost (deliveries counted against those expected; the adapter's dropped/late/lost counters; failed
// publishes) and the generators kept pace (at least 95% of the offered rate sent). Per step: offered
// and achieved rates, deliveries/s, p50/p99/max latency, loss, and the CPU of every process over the
// send window: each Redis master (INFO cpu), each hub node / loader / subscriber (process.cpuUsage),
// this process, and the machine. The throughput figure is the highest passing offered rate.
//
// This machine's cores are shared by the masters, the hub nodes or loaders and this process: the
// bench names what saturated first (the busiest processes and the machine at the first failing
// step), and for the redis mode projects what the masters would carry with a core each (the rate
// at the best passing step divided by the busiest master's share of a core there).
//
// Prints a table per mode and master count, a comparison with the ratios, and one JSON line (also
// written to bench/results/cluster-throughput.json, or cluster-throughput-quick.json).
import { execFileSync, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { killChildrenOnExit, startChild, stopChild, trackChild } from './children.js'
import { clockOffsets, nowMicros, serve } from './ipc.js'
import { cpuUsOf, delta, machineBusyPercent, machineInfo, machineTimes } from './measure.js'
import { callsOf, parseInfo, redisCpuUs } from './redis-admin.js'
import { connectRoomClients, countProbe, roomsByNode } from './room-clients.js'
import { MESSAGE_SIZE, listenRoomHub, paced, roomMessage, roomName, roomNodeCalls } from './room-node.js'
import { sleep, until } from './wait.js'

const thisFile = fileURLToPath(import.meta.url)
const here = dirname(thisFile)
const dist = join(here, '..', 'dist')
const P99_LIMIT_MS = 100
/** A step whose generators sent less than this share of the offered rate did not offer it. */
const PACE_MIN = 0.95
const MODES = ['hub', 'redis']

const { values: args } = parseArgs({
  options: {
    node: { type: 'string' }, // internal: the JSON configuration of a hub node process
    loader: { type: 'string' }, // internal: a redis-mode loader
    subscriber: { type: 'string' }, // internal: a redis-mode subscriber
    quick: { type: 'boolean', default: false },
    masters: { type: 'string' },
    mode: { type: 'string' },
    seconds: { type: 'string' },
    nodes: { type: 'string' },
    clients: { type: 'string' },
    rooms: { type: 'string' },
    'max-rate': { type: 'string' },
    'start-rate': { type: 'string' },
    refine: { type: 'string' },
    subscribers: { type: 'string' },
    generator: { type: 'string' },
    help: { type: 'boolean', default: false }
  }
})

/** The hub's channel of a room (names.js: `<prefix>:db<db>:room:{<room>}`): the redis mode uses the same. */
const roomChannel = (prefix, i) => `${prefix}:db0:room:{${roomName(i)}}`

// ---------------------------------------------------------------------------------------------
// Latency histogram: log buckets 2% wide, in µs; compact enough to cross IPC.

const BUCKETS = 1000
const LOG_STEP = Math.log(1.02)

function bucketOf (us) {
  return us <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(us) / LOG_STEP))
}

function newHistogram () {
  return { counts: new Array(BUCKETS).fill(0), n: 0, maxUs: 0 }
}

function record (hist, us) {
  hist.counts[bucketOf(us)]++
  hist.n++
  if (us > hist.maxUs) hist.maxUs = us
}

function mergeInto (into, hist) {
  for (let i = 0; i < BUCKETS; i++) into.counts[i] += hist.counts[i]
  into.n += hist.n
  if (hist.maxUs > into.maxUs) into.maxUs = hist.maxUs
}

/** The upper bound of the bucket holding the p-quantile, in ms (at most 2% above the true value). */
function quantileMs (hist, p) {
  if (hist.n === 0) return null
  const rank = Math.ceil(hist.n * p)
  let seen = 0
  for (let i = 0; i < BUCKETS; i++) {
    seen += hist.counts[i]
    if (seen >= rank) return Math.min(Math.exp(i * LOG_STEP), hist.maxUs) / 1000
  }
  return hist.maxUs / 1000
}

const latencyOf = (hist) => ({ n: hist.n, p50: quantileMs(hist, 0.5), p99: quantileMs(hist, 0.99), max: hist.n === 0 ? null : hist.maxUs / 1000 })

/** Reads `<int> <int> <int> <int> ` from the head of a payload: stamp, step, origin, room. */
function parseHead (buffer) {
  const out = [0, 0, 0, 0]
  let i = 0
  for (let field = 0; field < 4; field++) {
    let value = 0
    for (let c = buffer[i]; c !== 32 && i < buffer.length; c = buffer[++i]) value = value * 10 + c - 48
    out[field] = value
    i++
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Child processes: a hub node, a loader, a subscriber.

async function runNode (cfg) {
  const system = await listenRoomHub(dist, { cluster: cfg.cluster, prefix: cfg.prefix })
  const names = Array.from({ length: cfg.rooms }, (_, i) => roomName(i))
  serve({
    ...roomNodeCalls(system),
    snapshot: () => ({ cpu: process.cpuUsage(), counters: system.counters() }),
    run: ({ rate, ms, step, seed }) => paced({
      rate,
      ms,
      seed,
      targets: cfg.targets,
      rooms: cfg.rooms,
      send: (room) => system.send(names[room], roomMessage(step, cfg.index, room))
    }),
    close: () => system.close()
  })
  process.send({ ready: true, port: system.port })
}

async function clusterClient (nodes, options) {
  const { Cluster } = await import('ioredis')
  const client = new Cluster(nodes, options)
  client.on('error', () => {})
  client.on('nodeError', () => {})
  await new Promise((resolve, reject) => {
    client.once('ready', resolve)
    client.once('end', () => reject(new Error('the cluster client ended before it was ready')))
  })
  return client
}

/** A plain TCP connection to a master, for the raw generator. */
async function rawConnection (port) {
  const socket = net.connect(port, '127.0.0.1')
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  socket.setNoDelay(true)
  return socket
}

/**
 * The replies to a raw loader's SPUBLISHes: integer lines (`:<receivers>\r\n`), or error lines;
 * counted byte by byte, across chunks.
 */
function replyCounter (counts) {
  let state = 0 // 0 line start, 1 after ':', 2 after ':0', 3 rest of the line
  return (chunk) => {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]
      if (c === 10) {
        state = 0
        continue
      }
      if (state === 0) {
        if (c === 58) {
          counts.acked++
          state = 1
        } else {
          if (c === 45) counts.errors++
          state = 3
        }
      } else if (state === 1) {
        state = c === 48 ? 2 : 3
      } else if (state === 2) {
        if (c === 13) counts.noReceiver++
        state = 3
      }
    }
  }
}

/** `<digits>\r\n` at `pos`: [value, position after it], or null when the chunk ends first. */
function readLineInt (buffer, pos) {
  let value = 0
  let negative = false
  for (let i = pos; i < buffer.length; i++) {
    const c = buffer[i]
    if (c === 13) return i + 1 < buffer.length ? [negative ? -value : value, i + 2] : null
    if (c === 45) negative = true
    else value = value * 10 + c - 48
  }
  return null
}

/**
 * A minimal RESP2 reader for a subscriber connection: arrays of bulk strings and integers (the
 * smessage pushes and the ssubscribe confirmations). Calls `onArray(items)` with Buffers (views,
 * valid during the call) and numbers.
 */
function pushReader (onArray) {
  let pending = null
  return (chunk) => {
    const buffer = pending === null ? chunk : Buffer.concat([pending, chunk])
    let pos = 0
    for (;;) {
      if (pos >= buffer.length) break
      if (buffer[pos] !== 42) throw new Error(`unexpected RESP type ${String.fromCharCode(buffer[pos])}`)
      const head = readLineInt(buffer, pos + 1)
      if (head === null) break
      let at = head[1]
      const items = []
      for (let k = 0; k < head[0] && at !== -1; k++) {
        if (at >= buffer.length) {
          at = -1
          break
        }
        const type = buffer[at]
        const line = readLineInt(buffer, at + 1)
        if (line === null) {
          at = -1
        } else if (type === 36) { // $len\r\n bytes\r\n
          const end = line[1] + line[0]
          if (end + 2 > buffer.length) at = -1
          else {
            items.push(buffer.subarray(line[1], end))
            at = end + 2
          }
        } else { // :int\r\n
          items.push(line[0])
          at = line[1]
        }
      }
      if (at === -1) break
      onArray(items)
      pos = at
    }
    pending = pos >= buffer.length ? null : Buffer.from(buffer.subarray(pos))
  }
}

/**
 * A loader: `rate` SPUBLISHes per second to room channels drawn at random, through an ioredis
 * Cluster with auto-pipelining (`generator: ioredis`), or as pre-encoded RESP written once per
 * turn to a plain socket per master, routed by the slot map (`generator: raw`).
 */
async function runLoader (cfg) {
  const channels = Array.from({ length: cfg.rooms }, (_, i) => roomChannel(cfg.prefix, i))
  const targets = Array.from({ length: cfg.rooms }, (_, i) => i)
  const counts = { acked: 0, errors: 0, noReceiver: 0 }
  let sent = 0
  let lastError
  let publish
  let flush
  let close
  if (cfg.generator === 'raw') {
    const sockets = await Promise.all(cfg.ports.map(rawConnection))
    for (const socket of sockets) {
      socket.on('data', replyCounter(counts))
      socket.on('error', (error) => { lastError = String(error.message) })
    }
    const heads = channels.map((channel) => `*3\r\n$8\r\nSPUBLISH\r\n$${Buffer.byteLength(channel)}\r\n${channel}\r\n$${MESSAGE_SIZE}\r\n`)
    const queued = sockets.map(() => '')
    publish = (room, text) => { queued[cfg.owners[room]] += heads[room] + text + '\r\n' }
    flush = () => {
      for (let m = 0; m < sockets.length; m++) {
        if (queued[m] !== '') {
          sockets[m].write(queued[m])
          queued[m] = ''
        }
      }
    }
    close = () => { for (const socket of sockets) socket.destroy() }
  } else {
    const client = await clusterClient(cfg.cluster, { enableAutoPipelining: true })
    const onAck = (receivers) => {
      counts.acked++
      if (receivers === 0) counts.noReceiver++
    }
    const onError = (error) => {
      counts.errors++
      lastError = String(error?.message ?? error)
    }
    publish = (room, text) => { client.spublish(channels[room], text).then(onAck, onError) }
    close = () => client.quit().catch(() => client.disconnect())
  }
  serve({
    clock: () => nowMicros(),
    snapshot: () => ({ cpu: process.cpuUsage() }),
    async run ({ rate, ms, step, seed }) {
      sent = counts.acked = counts.errors = counts.noReceiver = 0
      const result = await paced({
        rate,
        ms,
        seed,
        targets,
        rooms: cfg.rooms,
        send (room) {
          sent++
          publish(room, roomMessage(step, cfg.index, room))
        },
        flush
      })
      return { sent: result.sent, ms: result.ms }
    },
    /** Waits until Redis answered every SPUBLISH of the step (at most 30 s). */
    async acks () {
      await until(() => counts.acked + counts.errors >= sent, 30_000, 10)
      return { sent, ...counts, unanswered: sent - counts.acked - counts.errors, lastError }
    },
    close
  })
  process.send({ ready: true })
}

/**
 * A subscriber: SSUBSCRIBEs to its rooms' channels (room i on subscriber i % N) through an ioredis
 * Cluster with shardedSubscribers (`generator: ioredis`), or on a plain socket per master with a
 * minimal RESP reader (`generator: raw`); measures the latency of every message of the step.
 */
async function runSubscriber (cfg) {
  let step = -1
  let loaderOffsets = []
  let selfOffset = 0
  let hist = newHistogram()
  let received = 0
  let stale = 0
  let lastAt = 0
  const onMessage = (message) => {
    const now = nowMicros()
    lastAt = now
    const [stamp, messageStep, origin] = parseHead(message)
    if (messageStep !== step) {
      stale++
      return
    }
    received++
    record(hist, (now - selfOffset) - (stamp - (loaderOffsets[origin] ?? 0)))
  }
  let close
  if (cfg.generator === 'raw') {
    const sockets = await Promise.all(cfg.ports.map(rawConnection))
    let confirmed = 0
    for (const socket of sockets) {
      socket.on('data', pushReader((items) => {
        const kind = items[0]
        // smessage (8 bytes) or ssubscribe (10 bytes)
        if (kind.length === 8) onMessage(items[2])
        else if (kind.length === 10) confirmed++
      }))
      socket.on('error', () => {})
    }
    for (const room of cfg.mine) {
      const channel = roomChannel(cfg.prefix, room)
      sockets[cfg.owners[room]].write(`*2\r\n$10\r\nSSUBSCRIBE\r\n$${Buffer.byteLength(channel)}\r\n${channel}\r\n`)
    }
    if (!(await until(() => confirmed >= cfg.mine.length, 10_000, 10))) throw new Error(`only ${confirmed} of ${cfg.mine.length} SSUBSCRIBEs confirmed`)
    close = () => { for (const socket of sockets) socket.destroy() }
  } else {
    const client = await clusterClient(cfg.cluster, { shardedSubscribers: true })
    client.on('smessageBuffer', (channel, message) => onMessage(message))
    for (const room of cfg.mine) await client.ssubscribe(roomChannel(cfg.prefix, room))
    close = () => client.quit().catch(() => client.disconnect())
  }
  serve({
    clock: () => nowMicros(),
    snapshot: () => ({ cpu: process.cpuUsage() }),
    begin (options) {
      ({ step, loaderOffsets, selfOffset } = options)
      hist = newHistogram()
      received = 0
      stale = 0
      return true
    },
    progress: () => ({ received, lastAt, now: nowMicros() }),
    end: () => ({ received, stale, hist, lastAt }),
    close
  })
  process.send({ ready: true })
}

// ---------------------------------------------------------------------------------------------
// The driver: processes, clusters, cleanup.

/** The clusters' temp dirs not yet removed (the redis-server children are tracked in children.js). */
const tempDirs = new Set()

function removeTempDirs () {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
  tempDirs.clear()
}

/** A free loopback port (the OS may hand it out again: callers keep a set of their own). */
function freePort () {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

async function freshPort (taken) {
  for (;;) {
    const port = await freePort()
    if (!taken.has(port)) {
      taken.add(port)
      return port
    }
  }
}

/** Whether a Redis answers PING on the port. */
function pong (port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    const done = (ok) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), 500)
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (data) => done(String(data).startsWith('+PONG')))
  })
}

/** Runs a program to its end (killed after `timeoutMs`); resolves with its exit code and output. */
function runProgram (command, argv, timeoutMs) {
  return new Promise((resolve) => {
    const child = trackChild(spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] }))
    let output = ''
    child.stdout.on('data', (chunk) => { output += String(chunk) })
    child.stderr.on('data', (chunk) => { output += String(chunk) })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', (error) => { output += String(error) })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}

/**
 * A Redis Cluster of `masters` masters and no replicas, every node a redis-server child on free
 * loopback ports, files in a temp dir; resolves once every node says cluster_state:ok, knows every
 * other node and all 16384 slots are served.
 */
async function startCluster (masters, Redis) {
  const dir = mkdtempSync(join(os.tmpdir(), 'fwh-bench-cluster-'))
  tempDirs.add(dir)
  const taken = new Set()
  const nodes = []
  const admins = []

  async function startNode () {
    for (let attempt = 1; ; attempt++) {
      const port = await freshPort(taken)
      // The bus port is set rather than left at port + 10000, which is past 65535 for many free ports.
      const bus = await freshPort(taken)
      const child = spawn('redis-server', [
        '--port', String(port),
        '--bind', '127.0.0.1',
        '--cluster-enabled', 'yes',
        '--cluster-port', String(bus),
        // A lone node never learns its address from a peer: CLUSTER SLOTS would name no host, and
        // ioredis would find no node for any slot.
        '--cluster-announce-ip', '127.0.0.1',
        '--cluster-config-file', join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout', '5000',
        '--dir', dir,
        '--logfile', join(dir, `redis-${port}.log`),
        '--save', '',
        '--appendonly', 'no',
        '--repl-diskless-sync-delay', '0',
        '--daemonize', 'no'
      ], { cwd: dir, stdio: 'ignore' })
      trackChild(child)
      const up = await until(async () => child.exitCode !== null || await pong(port), 5000, 20)
      if (up && child.exitCode === null) return { port, bus, child }
      child.kill('SIGKILL')
      if (attempt === 3) throw new Error(`redis-server on port ${port} did not start (see ${join(dir, `redis-${port}.log`)})`)
    }
  }

  async function stop () {
    for (const admin of admins) admin.disconnect()
    await Promise.all(nodes.map(({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return undefined
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGKILL')
      return exited
    }))
    rmSync(dir, { recursive: true, force: true })
    tempDirs.delete(dir)
  }

  try {
    for (let i = 0; i < masters; i++) nodes.push(await startNode())
    for (const { port } of nodes) {
      const admin = new Redis({ host: '127.0.0.1', port, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 2000, commandTimeout: 5000 })
      admin.on('error', () => {})
      admins.push(admin)
    }
    if (masters >= 3) {
      const created = await runProgram('redis-cli', ['--cluster', 'create', ...nodes.map(({ port }) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], 30_000)
      if (created.code !== 0) throw new Error(`redis-cli --cluster create exited with ${created.code}:\n${created.output}`)
    } else {
      // By hand: redis-cli refuses fewer than 3 masters.
      for (let i = 1; i < masters; i++) await admins[i].call('CLUSTER', 'MEET', '127.0.0.1', nodes[0].port, nodes[0].bus)
      for (let i = 0; i < masters; i++) {
        await admins[i].call('CLUSTER', 'ADDSLOTSRANGE', Math.floor(i * 16384 / masters), Math.floor((i + 1) * 16384 / masters) - 1)
      }
    }
    let last = 'nothing checked yet'
    const settled = await until(async () => {
      for (let i = 0; i < masters; i++) {
        const info = parseInfo(await admins[i].call('CLUSTER', 'INFO'))
        if (info.cluster_state !== 'ok' || info.cluster_slots_assigned !== '16384' || Number(info.cluster_known_nodes) !== masters || Number(info.cluster_size) !== masters) {
          last = `node ${nodes[i].port}: state ${info.cluster_state}, slots ${info.cluster_slots_assigned}, known nodes ${info.cluster_known_nodes}, size ${info.cluster_size}`
          return false
        }
      }
      return true
    }, 30_000, 100)
    if (!settled) throw new Error(`the cluster of ${masters} master(s) did not form within 30 s; last seen: ${last}`)
  } catch (error) {
    await stop()
    throw error
  }

  /** Slot -> index of the master serving it. */
  const slotOwner = new Int16Array(16384).fill(-1)
  for (const [from, to, [, port]] of await admins[0].call('CLUSTER', 'SLOTS')) {
    const index = nodes.findIndex((node) => node.port === Number(port))
    for (let slot = from; slot <= to; slot++) slotOwner[slot] = index
  }
  return {
    masters,
    ports: nodes.map(({ port }) => port),
    startupNodes: nodes.map(({ port }) => ({ host: '127.0.0.1', port })),
    admins,
    /** Which master serves each room's channel (by its hash tag, the same for every prefix). */
    async roomMasters (rooms) {
      const owners = []
      for (let i = 0; i < rooms; i++) owners.push(slotOwner[await admins[0].call('CLUSTER', 'KEYSLOT', `{${roomName(i)}}`)])
      return owners
    },
    stop
  }
}

/** Every master's CPU time (INFO cpu, µs) and SPUBLISH count. */
async function mastersSnapshot (cluster) {
  return Promise.all(cluster.admins.map(async (admin) => {
    const cpuUs = await redisCpuUs(admin)
    const commands = parseInfo(await admin.info('commandstats'))
    return { cpuUs, spublish: callsOf(commands.cmdstat_spublish) }
  }))
}

/**
 * CPU over a window: every process (Redis masters by INFO, children and this process by
 * process.cpuUsage) and the machine. `take()` starts it; the function it returns ends it.
 */
async function cpuWindow (cluster, procs) {
  const take = async () => ({
    masters: await mastersSnapshot(cluster),
    procs: await Promise.all(procs.map((proc) => proc.call('snapshot'))),
    self: process.cpuUsage(),
    machine: machineTimes(),
    wall: performance.now()
  })
  const before = await take()
  return async () => {
    const after = await take()
    const wallUs = (after.wall - before.wall) * 1000
    const percent = (us) => 100 * us / wallUs
    return {
      wallMs: wallUs / 1000,
      masters: cluster.ports.map((port, i) => ({ name: `redis:${port}`, kind: 'redis', cpu: percent(after.masters[i].cpuUs - before.masters[i].cpuUs), spublish: after.masters[i].spublish - before.masters[i].spublish })),
      procs: procs.map((proc, i) => ({ name: proc.label, kind: proc.kind, cpu: percent(cpuUsOf(after.procs[i].cpu, before.procs[i].cpu)) })),
      self: { name: 'driver', kind: 'driver', cpu: percent(cpuUsOf(after.self, before.self)) },
      machineBusy: machineBusyPercent(after.machine, before.machine),
      afterProcs: after.procs
    }
  }
}

/**
 * What saturated first, from the CPU of a failing step: the machine (all its cores busy), or the
 * busiest single process when it is at a full core.
 */
function saturation (step) {
  if (step === undefined) return { verdict: 'nothing: no step failed up to the maximum rate', busiest: [] }
  const all = [...step.cpu.masters, ...step.cpu.procs, step.cpu.self].sort((a, b) => b.cpu - a.cpu)
  const busiest = all.slice(0, 4).map(({ name, cpu }) => ({ name, cpu: Math.round(cpu) }))
  const list = busiest.map(({ name, cpu }) => `${name} ${cpu}%`).join(', ')
  const nproc = os.availableParallelism()
  const sum = all.reduce((total, proc) => total + proc.cpu, 0)
  const master = step.cpu.masters.reduce((top, m) => (m.cpu > top.cpu ? m : top))
  const parts = []
  if (step.machineBusy >= 85) parts.push(`the machine's ${nproc} cores (${Math.round(step.machineBusy)}% busy; the processes together ${Math.round(sum)}% of ${nproc * 100}%)`)
  const full = all.filter((proc) => proc.cpu >= 90)
  if (full.length > 0) parts.push(`${full.map(({ name, cpu }) => `${name} at ${Math.round(cpu)}% of a core`).join(', ')}`)
  if (parts.length === 0) parts.push(`no core full (machine ${Math.round(step.machineBusy)}% busy): queueing or scheduling`)
  const redisBound = master.cpu >= 90
  return {
    verdict: `${parts.join('; ')}. Busiest: ${list}. Redis ${redisBound ? 'saturated' : master.cpu >= 50 ? 'near saturation (on shared cores it may get no more)' : 'not saturated'} (busiest master ${master.name} ${Math.round(master.cpu)}%)`,
    busiest,
    redisBound,
    machineBusy: Math.round(step.machineBusy),
    failedOn: step.reasons
  }
}

/**
 * Ramps the offered rate: doubles from `startRate` until a step fails (or `maxRate`), then `refine`
 * geometric bisections between the last passing and the first failing rate. If the first step
 * fails, halves down instead.
 */
async function ramp (runStep, { startRate, maxRate, refine, log }) {
  const steps = []
  let lastPass
  let firstFail
  const step = async (rate) => {
    const result = await runStep(rate, steps.length + 1)
    steps.push(result)
    log(result)
    if (result.pass) lastPass = Math.max(lastPass ?? 0, rate)
    else firstFail = Math.min(firstFail ?? Infinity, rate)
    return result.pass
  }
  for (let rate = startRate; rate <= maxRate; rate *= 2) {
    if (!(await step(rate))) break
  }
  if (lastPass === undefined) {
    for (let rate = Math.floor(startRate / 2); rate >= 100; rate = Math.floor(rate / 2)) {
      if (await step(rate)) break
    }
  }
  for (let i = 0; i < refine; i++) {
    if (lastPass === undefined || firstFail === undefined) break
    const rate = Math.round(Math.sqrt(lastPass * firstFail) / 100) * 100
    if (rate <= lastPass || rate >= firstFail) break
    await step(rate)
  }
  const knee = steps.filter((s) => !s.pass).sort((a, b) => a.offered - b.offered)[0]
  const best = steps.filter((s) => s.pass).sort((a, b) => b.offered - a.offered)[0]
  return { steps, throughput: lastPass ?? 0, best, knee }
}

function verdictOf (step) {
  const reasons = []
  if (!(step.latencyMs.p99 < P99_LIMIT_MS)) reasons.push(`p99 ${fixed(step.latencyMs.p99, 1)} ms`)
  if (step.loss > 0) reasons.push(`${step.loss} lost`)
  if (step.achieved < PACE_MIN * step.offered) reasons.push(`generators behind (${Math.round(step.achieved)}/s sent)`)
  return reasons
}

/** What a step keeps of its CPU window (`cpuWindow`'s end): the figures the report and the JSON show. */
const stepCpu = (cpu) => ({ cpu: { masters: cpu.masters, procs: cpu.procs, self: cpu.self, wallMs: cpu.wallMs }, machineBusy: cpu.machineBusy })

/**
 * A step of the ramp in either mode: `runStep(rate, ms)` for `seconds`, judged (`reasons`, `pass`),
 * then a wait until nothing has arrived for a while, so that a failed step's backlog does not count
 * against the next one.
 * @param {(rate: number, ms: number) => Promise<object>} runStep
 * @param {number} seconds
 * @param {() => number | Promise<number>} lastAnyAt when the latest message (of any step) arrived, µs
 */
function measuredStep (runStep, seconds, lastAnyAt) {
  return async (rate) => {
    const step = await runStep(rate, seconds * 1000)
    step.reasons = verdictOf(step)
    step.pass = step.reasons.length === 0
    await quiet(lastAnyAt)
    await sleep(300)
    return step
  }
}

// ---------------------------------------------------------------------------------------------
// Hub mode.

function makeSink () {
  return { step: -1, received: 0, misrouted: 0, hist: newHistogram(), lastAt: 0, lastAnyAt: 0, probeRound: 0, probeGot: null, disconnected: 0, closing: false, offsets: [] }
}

function onPayload (sink, client, data) {
  const now = nowMicros()
  sink.lastAnyAt = now
  if (data[0] === 112) { // "p <round> <room>": a readiness probe
    countProbe(sink, client, data.toString())
    return
  }
  const [stamp, step, origin, room] = parseHead(data)
  if (step !== sink.step) return
  sink.received++
  sink.lastAt = now
  if (room !== client.room) sink.misrouted++
  record(sink.hist, now - (stamp - sink.offsets[origin]))
}

/** Waits until `received()` reaches `expected`, or it made no progress for 2 s, or 20 s went by. */
async function drain (received, expected) {
  const deadline = performance.now() + 20_000
  let seen = -1
  let since = performance.now()
  for (;;) {
    const now = await received()
    if (now >= expected) return true
    if (now !== seen) {
      seen = now
      since = performance.now()
    } else if (performance.now() - since > 2000) return false
    if (performance.now() > deadline) return false
    await sleep(20)
  }
}

/** Waits until nothing (of any step) arrived for `quietMs`: a failed step's backlog is gone. */
async function quiet (lastAnyAt, quietMs = 500, timeoutMs = 20_000) {
  await until(async () => nowMicros() - await lastAnyAt() > quietMs * 1000, timeoutMs, 50)
}

async function runHubMode (cluster, ctx) {
  const { config, WebSocket } = ctx
  const { nodes: K, clients: C, rooms: R } = config
  const prefix = `fwh-bench-ct:${randomUUID().slice(0, 8)}`
  const owned = roomsByNode(K, R)
  const sink = makeSink()
  const nodes = []
  const sockets = []
  try {
    for (let k = 0; k < K; k++) {
      const targets = K === 1 ? owned[0] : owned.flatMap((rooms, j) => (j === k ? [] : rooms))
      const node = await startChild(thisFile, 'node', { index: k, rooms: R, prefix, cluster: cluster.startupNodes, targets }, `node${k}`)
      node.kind = 'hub node'
      nodes.push(node)
    }
    const clocks = await clockOffsets(nodes.map((node) => node.call))
    sink.offsets = clocks.map((clock) => clock.offsetUs)

    const { members, failed, unreached } = await connectRoomClients({
      WebSocket,
      nodes,
      owned,
      rooms: R,
      perNode: C,
      sink,
      onPayload: (client, data) => onPayload(sink, client, data),
      sockets,
      warn: (problem) => console.warn(`  ! ${problem}`)
    })
    await sleep(300)

    // Members per broadcast, on average over the rooms the nodes draw from.
    const targetsOf = (k) => (K === 1 ? owned[0] : owned.flatMap((rooms, j) => (j === k ? [] : rooms)))
    const fanout = nodes.reduce((sum, _, k) => sum + targetsOf(k).reduce((s, room) => s + members[room], 0) / targetsOf(k).length, 0) / K

    let stepId = 0
    const runStep = async (rate, ms) => {
      stepId++
      sink.step = stepId
      sink.received = 0
      sink.misrouted = 0
      sink.hist = newHistogram()
      sink.lastAt = 0
      const countersBefore = await Promise.all(nodes.map((node) => node.call('snapshot')))
      const end = await cpuWindow(cluster, nodes)
      const started = nowMicros()
      const results = await Promise.all(nodes.map((node, k) => node.call('run', { rate: rate / K, ms, step: stepId, seed: stepId * 100 + k })))
      const cpu = await end()
      let expected = 0
      for (const result of results) result.perRoom.forEach((count, room) => { expected += count * members[room] })
      await drain(() => sink.received, expected)
      const countersAfter = await Promise.all(nodes.map((node) => node.call('snapshot')))
      const counters = {}
      nodes.forEach((_, k) => {
        for (const [key, value] of Object.entries(delta(countersAfter[k].counters, countersBefore[k].counters))) counters[key] = (counters[key] ?? 0) + value
      })
      const sent = results.reduce((sum, result) => sum + result.sent, 0)
      const sendSeconds = Math.max(...results.map((result) => result.ms)) / 1000
      const adapterLoss = (counters['adapter.dropped'] ?? 0) + (counters['adapter.late'] ?? 0) + (counters['adapter.lost'] ?? 0)
      const received = sink.received
      return {
        offered: rate,
        sent,
        achieved: sent / sendSeconds,
        expected,
        received,
        deliveriesPerSecond: sink.lastAt > started ? received / ((sink.lastAt - started) / 1e6) : 0,
        latencyMs: latencyOf(sink.hist),
        loss: Math.max(0, expected - received) + adapterLoss,
        lost: Math.max(0, expected - received),
        misrouted: sink.misrouted,
        adapter: { dropped: counters['adapter.dropped'] ?? 0, late: counters['adapter.late'] ?? 0, lost: counters['adapter.lost'] ?? 0, published: counters['adapter.published'] ?? 0, received: counters['adapter.received'] ?? 0 },
        ...stepCpu(cpu)
      }
    }
    const measured = measuredStep(runStep, config.seconds, () => sink.lastAnyAt)

    // Warm-up (JIT, TCP windows, connections), not counted.
    await runStep(config.startRate.hub, config.warmupMs)
    await quiet(() => sink.lastAnyAt)
    const result = await ramp(measured, {
      startRate: config.startRate.hub,
      maxRate: config.maxRate,
      refine: config.refine,
      log: (step) => printStep('hub', cluster.masters, step)
    })
    return {
      mode: 'hub',
      masters: cluster.masters,
      prefix,
      clients: sockets.length,
      clientsFailed: failed,
      clientsDisconnected: sink.disconnected,
      roomsUnreached: unreached.length,
      fanout,
      clocks,
      ...result,
      throughputDeliveries: result.best === undefined ? 0 : result.best.deliveriesPerSecond,
      saturation: saturation(result.knee)
    }
  } finally {
    sink.closing = true
    for (const socket of sockets) socket.terminate()
    await Promise.all(nodes.map(stopChild))
  }
}

// ---------------------------------------------------------------------------------------------
// Redis-only mode.

async function runRedisMode (cluster, ctx) {
  const { config } = ctx
  const { nodes: K, rooms: R, subscribers: N } = config
  const prefix = `fwh-bench-ct-redis:${randomUUID().slice(0, 8)}`
  const base = { rooms: R, prefix, cluster: cluster.startupNodes, ports: cluster.ports, owners: cluster.owners, generator: config.generator }
  const loaders = []
  const subscribers = []
  try {
    for (let j = 0; j < N; j++) {
      const mine = Array.from({ length: R }, (_, i) => i).filter((i) => i % N === j)
      const sub = await startChild(thisFile, 'subscriber', { ...base, index: j, mine }, `sub${j}`)
      sub.kind = 'subscriber'
      subscribers.push(sub)
    }
    for (let k = 0; k < K; k++) {
      const loader = await startChild(thisFile, 'loader', { ...base, index: k }, `loader${k}`)
      loader.kind = 'loader'
      loaders.push(loader)
    }
    const loaderClocks = await clockOffsets(loaders.map((loader) => loader.call))
    const subscriberClocks = await clockOffsets(subscribers.map((sub) => sub.call))
    const procs = [...loaders, ...subscribers]
    const lastAnyAt = async () => Math.max(...(await Promise.all(subscribers.map((sub) => sub.call('progress')))).map((p, j) => p.lastAt - subscriberClocks[j].offsetUs))

    let stepId = 0
    const runStep = async (rate, ms) => {
      stepId++
      await Promise.all(subscribers.map((sub, j) => sub.call('begin', { step: stepId, loaderOffsets: loaderClocks.map((c) => c.offsetUs), selfOffset: subscriberClocks[j].offsetUs })))
      const end = await cpuWindow(cluster, procs)
      const started = nowMicros()
      const results = await Promise.all(loaders.map((loader, k) => loader.call('run', { rate: rate / K, ms, step: stepId, seed: stepId * 100 + k })))
      const cpu = await end()
      const acks = await Promise.all(loaders.map((loader) => loader.call('acks')))
      const sent = results.reduce((sum, result) => sum + result.sent, 0)
      const acked = acks.reduce((sum, a) => sum + a.acked, 0)
      const errors = acks.reduce((sum, a) => sum + a.errors + a.unanswered, 0)
      const noReceiver = acks.reduce((sum, a) => sum + a.noReceiver, 0)
      await drain(async () => (await Promise.all(subscribers.map((sub) => sub.call('progress')))).reduce((sum, p) => sum + p.received, 0), acked)
      const ends = await Promise.all(subscribers.map((sub) => sub.call('end')))
      const hist = newHistogram()
      for (const e of ends) mergeInto(hist, e.hist)
      const received = ends.reduce((sum, e) => sum + e.received, 0)
      const lastAt = Math.max(...ends.map((e, j) => e.lastAt - subscriberClocks[j].offsetUs))
      const sendSeconds = Math.max(...results.map((result) => result.ms)) / 1000
      const spublished = cpu.masters.reduce((sum, m) => sum + m.spublish, 0)
      return {
        offered: rate,
        sent,
        achieved: sent / sendSeconds,
        expected: sent,
        received,
        deliveriesPerSecond: lastAt > started ? received / ((lastAt - started) / 1e6) : 0,
        latencyMs: latencyOf(hist),
        loss: Math.max(0, sent - received) + errors,
        lost: Math.max(0, sent - received),
        publishErrors: errors,
        noReceiver,
        lastError: acks.find((a) => a.lastError !== undefined)?.lastError,
        // Redis CPU per SPUBLISH (the masters' CPU over the send window, all of them)
        redisCpuUsPerPublish: spublished > 0 ? cpu.masters.reduce((sum, m) => sum + m.cpu, 0) * cpu.wallMs * 10 / spublished : null,
        ...stepCpu(cpu)
      }
    }
    const measured = measuredStep(runStep, config.seconds, lastAnyAt)

    // Each master's CPU with no load (cron, cluster bus, this bench's INFO polling): taken out of
    // the projection below, where it would otherwise count as the cost of SPUBLISHes.
    const idleBefore = await mastersSnapshot(cluster)
    const idleStart = performance.now()
    await sleep(1000)
    const idleAfter = await mastersSnapshot(cluster)
    const idleMs = performance.now() - idleStart
    const idle = idleAfter.map((after, i) => 100 * (after.cpuUs - idleBefore[i].cpuUs) / 1000 / idleMs)

    await runStep(config.startRate.redis, config.warmupMs)
    await quiet(lastAnyAt)
    const result = await ramp(measured, {
      startRate: config.startRate.redis,
      maxRate: config.maxRate,
      refine: config.refine,
      log: (step) => printStep('redis', cluster.masters, step)
    })
    // What the masters would carry with a core each: the best passing rate over the busiest master's
    // share of a core there, its idle share taken out (assumes the CPU per SPUBLISH stays the same up
    // to a full core; at low load it is higher, as each wake-up serves fewer commands).
    const best = result.best
    const busy = best === undefined ? [] : best.cpu.masters.map((m, i) => m.cpu - idle[i])
    const busiestMaster = Math.max(0, ...busy)
    const projected = best === undefined || busiestMaster <= 0 ? null : best.offered / (busiestMaster / 100)
    const redisCpuUsPerPublishNet = best === undefined ? null : busy.reduce((sum, cpu) => sum + cpu, 0) * best.cpu.wallMs * 10 / best.cpu.masters.reduce((sum, m) => sum + m.spublish, 0)
    return {
      mode: 'redis',
      generator: config.generator,
      masters: cluster.masters,
      prefix,
      subscribers: N,
      loaders: K,
      clocks: { loaders: loaderClocks, subscribers: subscriberClocks },
      ...result,
      throughputDeliveries: best === undefined ? 0 : best.deliveriesPerSecond,
      mastersAtBest: best === undefined ? [] : best.cpu.masters.map(({ name, cpu, spublish }) => ({ name, cpu: Math.round(cpu), spublish })),
      mastersAtKnee: result.knee === undefined ? [] : result.knee.cpu.masters.map(({ name, cpu, spublish }) => ({ name, cpu: Math.round(cpu), spublish })),
      mastersIdle: idle.map((cpu) => Math.round(cpu * 10) / 10),
      projectedCoreEach: projected,
      redisCpuUsPerPublishNet,
      saturation: saturation(result.knee)
    }
  } finally {
    await Promise.all([...loaders, ...subscribers].map(stopChild))
  }
}

// ---------------------------------------------------------------------------------------------
// Report.

const fixed = (value, digits) => value === null || value === undefined || Number.isNaN(value) ? '-' : value.toFixed(digits)
const thousands = (value) => value === null || value === undefined ? '-' : value >= 10_000 ? `${fixed(value / 1000, 1)}k` : fixed(value, 0)
const sum = (list) => list.reduce((total, value) => total + value, 0)
/** How much more than one master these masters can carry when the rooms are drawn evenly: the busiest one saturates first. */
const balanceCap = (roomsPerMaster) => sum(roomsPerMaster) / Math.max(...roomsPerMaster)
const cpuList = (list) => list.map(({ cpu }) => fixed(cpu, 0)).join('/')

function stepHeader (mode) {
  const who = mode === 'hub' ? 'hub nodes' : 'loaders / subs'
  console.log(`| offered/s | sent/s | deliveries/s | p50 / p99 / max ms | lost | ${mode === 'hub' ? 'adapter dropped/late/lost' : 'publish errors'} | masters CPU % | ${who} CPU % | driver % | machine % | verdict |`)
  console.log('|---:|---:|---:|---|---:|---|---|---|---:|---:|---|')
}

function printStep (mode, masters, s) {
  const extra = mode === 'hub' ? `${s.adapter.dropped}/${s.adapter.late}/${s.adapter.lost}` : String(s.publishErrors)
  const l = s.latencyMs
  console.log(`| ${thousands(s.offered)} | ${thousands(s.achieved)} | ${thousands(s.deliveriesPerSecond)} | ${fixed(l.p50, 2)} / ${fixed(l.p99, 2)} / ${fixed(l.max, 1)} | ${s.lost} | ${extra} | ${cpuList(s.cpu.masters)} | ${cpuList(s.cpu.procs)} | ${fixed(s.cpu.self.cpu, 0)} | ${fixed(s.machineBusy, 0)} | ${s.pass ? 'pass' : `FAIL: ${s.reasons.join(', ')}`} |`)
}

function printRun (r, roomsPerMaster) {
  console.log('')
  console.log(`${r.mode} mode, ${r.masters} master(s): throughput ${thousands(r.throughput)} ${r.mode === 'hub' ? 'room broadcasts' : 'SPUBLISHes'}/s (${thousands(r.throughputDeliveries)} deliveries/s)` +
    `${r.knee === undefined ? ' (no step failed)' : `; first failing step ${thousands(r.knee.offered)}/s`}`)
  console.log(`rooms per master: ${roomsPerMaster.join('/')}${roomsPerMaster.length > 1 ? ` (rooms drawn evenly: the busiest master gets ${fixed(100 * Math.max(...roomsPerMaster) / sum(roomsPerMaster), 1)}% of the traffic, so ${roomsPerMaster.length} masters carry at most ${fixed(balanceCap(roomsPerMaster), 2)}x one master)` : ''}`)
  if (r.mode === 'redis') {
    console.log(`masters' CPU % at the best passing step: ${r.mastersAtBest.map((m) => `${m.name} ${m.cpu}%`).join(', ') || '-'}; at the knee: ${r.mastersAtKnee.map((m) => `${m.name} ${m.cpu}%`).join(', ') || '-'}`)
    console.log(`masters' CPU % with no load: ${r.mastersIdle.map((cpu) => fixed(cpu, 1)).join('/')}`)
    console.log(`projection, with a core for each master (best passing rate / busiest master's share of a core, idle share taken out): ${thousands(r.projectedCoreEach)}/s`)
    if (r.best !== undefined) console.log(`Redis CPU per SPUBLISH at the best passing step: ${fixed(r.best.redisCpuUsPerPublish, 2)} µs, ${fixed(r.redisCpuUsPerPublishNet, 2)} µs without the idle share`)
  } else {
    console.log(`${r.clients} clients (${r.clientsFailed} failed to open, ${r.clientsDisconnected} closed by a server, ${r.roomsUnreached} rooms unreached), ${fixed(r.fanout, 1)} members per broadcast`)
  }
  console.log(`saturated first: ${r.saturation.verdict}`)
}

function printComparison (runs, config) {
  const get = (mode, masters) => runs.find((r) => r.mode === mode && r.masters === masters)
  const counts = config.masters
  const ratios = {}
  console.log('\n## comparison\n')
  console.log(`| mode | ${counts.map((m) => `${m} master${m === 1 ? '' : 's'}`).join(' | ')} | ratio ${counts.at(-1)}:${counts[0]} | target 2.5x |`)
  console.log(`|---|${counts.map(() => '---:').join('|')}|---:|---|`)
  for (const mode of config.modes) {
    const first = get(mode, counts[0])
    const last = get(mode, counts.at(-1))
    const ratio = first !== undefined && last !== undefined && first.throughput > 0 ? last.throughput / first.throughput : null
    ratios[mode] = ratio
    const unit = mode === 'hub' ? 'bcast/s' : 'SPUBLISH/s'
    console.log(`| ${mode}${mode === 'redis' ? `, ${config.generator} generator` : ''} (${unit}, p99 < ${P99_LIMIT_MS} ms, no loss) | ${counts.map((m) => thousands(get(mode, m)?.throughput)).join(' | ')} | ${fixed(ratio, 2)}x | ${ratio === null || counts.length < 2 ? '-' : ratio >= 2.5 ? 'met' : 'NOT met'} |`)
    if (mode === 'redis') {
      const p1 = first?.projectedCoreEach
      const p3 = last?.projectedCoreEach
      const projected = p1 && p3 ? p3 / p1 : null
      ratios.redisProjected = projected
      console.log(`| redis, projected with a core per master | ${counts.map((m) => thousands(get(mode, m)?.projectedCoreEach)).join(' | ')} | ${fixed(projected, 2)}x | ${projected === null || counts.length < 2 ? '-' : projected >= 2.5 ? 'met (projection)' : 'NOT met (projection)'} |`)
    }
  }
  const lastRun = runs.find((r) => r.masters === counts.at(-1))
  if (lastRun !== undefined && counts.length > 1) console.log(`\n(rooms per master with ${counts.at(-1)} masters: ${lastRun.roomsPerMaster.join('/')}; with rooms drawn evenly the busiest master saturates first, so even with a core each ${counts.at(-1)} masters carry at most ${fixed(balanceCap(lastRun.roomsPerMaster), 2)}x one)`)
  console.log('')
  for (const r of runs) console.log(`- ${r.mode}, ${r.masters} master(s): saturated first: ${r.saturation.verdict}`)
  return ratios
}

const USAGE = 'node bench/cluster-throughput.js [--quick] [--masters 1,3] [--mode hub|redis|both] [--seconds S] [--nodes K] [--clients C] [--rooms R] [--max-rate N] [--start-rate N] [--refine N] [--subscribers N] [--generator ioredis|raw]'

function usage (message) {
  console.error(`cluster-throughput bench: ${message}\nusage: ${USAGE}`)
  process.exit(2)
}

async function main () {
  const quick = args.quick
  const number = (name, fallback, { integer = true, min = 1 } = {}) => {
    const value = Number(args[name] ?? fallback)
    if (!(value >= min) || (integer && !Number.isInteger(value))) usage(`--${name} must be ${integer ? 'an integer' : 'a number'} of at least ${min}`)
    return value
  }
  const masters = (args.masters ?? '1,3').split(',').map((text) => Number(text.trim()))
  if (masters.length === 0 || masters.some((m) => !Number.isInteger(m) || m < 1 || m > 16)) usage('--masters takes master counts from 1 to 16, comma-separated')
  const mode = args.mode ?? 'both'
  if (![...MODES, 'both'].includes(mode)) usage('--mode is hub, redis or both')
  const startRate = args['start-rate'] === undefined ? { hub: 2000, redis: 8000 } : { hub: number('start-rate'), redis: number('start-rate') }
  const config = {
    quick,
    masters,
    modes: mode === 'both' ? MODES : [mode],
    seconds: number('seconds', quick ? 2 : 5, { integer: false }),
    nodes: number('nodes', 2),
    clients: number('clients', quick ? 200 : 500),
    rooms: number('rooms', 200),
    subscribers: number('subscribers', 2),
    generator: args.generator ?? 'ioredis',
    maxRate: number('max-rate', 512_000),
    startRate,
    refine: number('refine', quick ? 1 : 2, { min: 0 }),
    warmupMs: quick ? 1000 : 2000,
    messageBytes: MESSAGE_SIZE,
    p99LimitMs: P99_LIMIT_MS,
    paceMin: PACE_MIN
  }
  if (config.rooms < config.nodes) usage('--rooms must be at least --nodes (every node owns rooms)')
  if (!['ioredis', 'raw'].includes(config.generator)) usage('--generator is ioredis or raw')

  for (const binary of ['redis-server', 'redis-cli']) {
    try {
      execFileSync(binary, ['--version'], { stdio: 'ignore' })
    } catch {
      console.error(`cluster-throughput bench: needs ${binary} on PATH`)
      process.exit(1)
    }
  }
  const version = /v=(\d+)\.(\d+)\.(\d+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))
  const redisVersion = version === null ? 'unknown' : version.slice(1).join('.')
  if (version !== null && Number(version[1]) < 7) {
    console.error(`cluster-throughput bench: Redis ${redisVersion} has no sharded pub/sub (7.0 or later needed)`)
    process.exit(1)
  }
  if (config.modes.includes('hub') && !existsSync(join(dist, 'adapters', 'redis', 'index.js'))) {
    console.error(`cluster-throughput bench: ${join(dist, 'adapters', 'redis', 'index.js')} does not exist (run npm run build)`)
    process.exit(1)
  }
  const { default: WebSocket } = await import('ws')
  const { Redis } = await import('ioredis')
  const ctx = { config, WebSocket }

  const info = machineInfo(here)
  console.log(`cluster-throughput bench${quick ? ' (quick)' : ''}: ${info.nproc} x ${info.cpu}, Node ${info.node}, commit ${info.commit}, redis-server ${redisVersion}`)
  console.log(`masters ${masters.join(' vs ')}; modes ${config.modes.join(', ')}; steps of ${config.seconds} s doubling from ${config.startRate.hub}/s (hub) and ${config.startRate.redis}/s (redis) up to ${config.maxRate}/s, then ${config.refine} refinement(s); pass: p99 < ${P99_LIMIT_MS} ms, nothing lost, >= ${PACE_MIN * 100}% of the offered rate sent`)
  if (config.modes.includes('hub')) console.log(`hub: ${config.nodes} nodes x ${config.clients} clients, ${config.rooms} rooms (room i on node i % ${config.nodes}), each node broadcasting to the other nodes' rooms; ${MESSAGE_SIZE}-byte payloads`)
  if (config.modes.includes('redis')) {
    const how = config.generator === 'raw'
      ? ['pre-encoded RESP on a socket per master', 'a socket per master, minimal RESP reader']
      : ['ioredis Cluster, enableAutoPipelining', 'ioredis Cluster, shardedSubscribers']
    console.log(`redis: ${config.nodes} loaders (${how[0]}) SPUBLISHing to ${config.rooms} room channels, ${config.subscribers} subscribers (${how[1]}; room i on subscriber i % ${config.subscribers}); ${MESSAGE_SIZE}-byte payloads`)
  }
  console.log(`(every process shares this machine's ${info.nproc} cores: Redis masters, hub nodes or loaders and subscribers, and this driver)`)

  const runs = []
  const failures = {}
  const roomsPerMaster = {}
  for (const m of masters) {
    let cluster
    try {
      const started = performance.now()
      cluster = await startCluster(m, Redis)
      const owners = await cluster.roomMasters(config.rooms)
      cluster.owners = owners
      roomsPerMaster[m] = cluster.ports.map((_, i) => owners.filter((owner) => owner === i).length)
      console.log(`\n# Redis Cluster of ${m} master(s) on ports ${cluster.ports.join(', ')} (formed in ${fixed((performance.now() - started) / 1000, 1)} s); rooms per master ${roomsPerMaster[m].join('/')}`)
      for (const name of config.modes) {
        console.log(`\n## ${name} mode, ${m} master(s)\n`)
        stepHeader(name)
        try {
          const run = name === 'hub' ? await runHubMode(cluster, ctx) : await runRedisMode(cluster, ctx)
          run.roomsPerMaster = roomsPerMaster[m]
          runs.push(run)
          printRun(run, roomsPerMaster[m])
        } catch (error) {
          failures[`${name}-${m}`] = String(error?.stack ?? error)
          console.log(`\n${name} mode, ${m} master(s): FAILED: ${error?.message ?? error}`)
        }
      }
    } catch (error) {
      failures[`cluster-${m}`] = String(error?.stack ?? error)
      console.log(`\n# Redis Cluster of ${m} master(s): FAILED: ${error?.message ?? error}`)
    } finally {
      await cluster?.stop()
    }
  }
  const ratios = printComparison(runs, config)
  const strip = (run) => ({ ...run, steps: run.steps.map(stripStep), best: run.best === undefined ? undefined : stripStep(run.best), knee: run.knee === undefined ? undefined : stripStep(run.knee) })
  const balance = Object.fromEntries(Object.entries(roomsPerMaster).map(([m, rooms]) => [m, { roomsPerMaster: rooms, cap: balanceCap(rooms) }]))
  const output = { bench: 'cluster-throughput', machine: info, redisVersion, config, ratios, balance, runs: runs.map(strip), failures }
  mkdirSync(join(here, 'results'), { recursive: true })
  const suffix = `${quick ? '-quick' : ''}${config.generator === 'raw' && config.modes.includes('redis') ? '-raw' : ''}`
  const file = join(here, 'results', `cluster-throughput${suffix}.json`)
  writeFileSync(file, JSON.stringify(output, null, 2) + '\n')
  console.log(`\n(results also in ${file})`)
  console.log(JSON.stringify(output))
  if (Object.keys(failures).length > 0) process.exitCode = 1
}

/** A step for the JSON: CPU figures rounded. */
function stripStep (step) {
  const round = (list) => list.map((p) => ({ ...p, cpu: Math.round(p.cpu * 10) / 10 }))
  return { ...step, cpu: { masters: round(step.cpu.masters), procs: round(step.cpu.procs), self: Math.round(step.cpu.self.cpu * 10) / 10, wallMs: Math.round(step.cpu.wallMs) }, machineBusy: Math.round(step.machineBusy) }
}

// Last, once every const above is initialised.
if (args.node !== undefined) await runNode(JSON.parse(args.node))
else if (args.loader !== undefined) await runLoader(JSON.parse(args.loader))
else if (args.subscriber !== undefined) await runSubscriber(JSON.parse(args.subscriber))
else if (args.help) console.log(USAGE)
else {
  killChildrenOnExit({ signals: ['SIGINT', 'SIGTERM', 'SIGHUP'], then: removeTempDirs })
  await main()
}
