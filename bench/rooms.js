// Room broadcasts on a cluster whose rooms each live on one node: how much of the Redis traffic a
// node receives is for rooms it has no member of, and what that costs the nodes and Redis.
//
//   node bench/rooms.js [--quick] [--nodes N] [--clients C] [--rooms R] [--rate B] [--seconds S]
//                       [--baseline-dist path] [--systems hub,baseline,socketio,socketio-sharded] [--hops]
//
// Run `npm run build` first (system `hub` is this worktree's dist/). Needs a Redis at REDIS_URL
// (default redis://127.0.0.1:6379); every run uses prefixes of its own.
//
// Scenario: N nodes (child processes, this same file with --node), C clients per node, R rooms;
// room i lives on node i % N: all of its members are clients of that node, which are dealt over its
// rooms. Each node, told over IPC, broadcasts to rooms drawn at random among ALL the rooms (the
// same seeded draws for every system), B/N broadcasts per second each for S seconds, so most
// broadcasts are for rooms of other nodes. Every ws client (raw `ws`, no permessage-deflate; for
// socket.io the engine.io/socket.io text protocol spoken by hand over the websocket transport)
// lives in this process. A node stamps each broadcast with process.hrtime (CLOCK_MONOTONIC, one
// clock for every process of a Linux machine); the clock offset of every node is checked over IPC
// before the run, and corrected if the clocks turn out not to be shared.
//
// Figures per system: pub/sub messages each node's Redis subscription(s) received (counted on the
// ioredis connections of the node, the same way for every system) next to the system's own
// counters; node CPU (process.cpuUsage of every node over the run) and Redis CPU (INFO cpu) per
// broadcast, with the node CPU the driver's pacing costs (measured by pacing with nothing sent)
// shown apart; Redis output bytes per broadcast; delivery latency p50/p99/max (all, same-node and
// cross-node deliveries); deliveries counted against the expected number. Redis clients of other
// programs are counted (CLIENT LIST) and reported: Redis's CPU would include their work.
// Prints a table per system, a comparison, and one JSON line with every figure (also written to
// bench/results/rooms.json, or rooms-quick.json). A system may be named more than once (runs
// alternate: --systems hub,socketio,socketio,hub). --hops adds, per node, its event-loop delay and,
// for the hub, where a broadcast's time goes on its Redis hop (see hop-probe.js).
import { randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { killChildrenOnExit, startChild, stopChild } from './children.js'
import { hopProbe } from './hop-probe.js'
import { clockOffsets, nowMicros, serve } from './ipc.js'
import { cpuUsOf, delta, latencySummary, machineBusyPercent, machineInfo, machineTimes } from './measure.js'
import { callsOf, parseInfo, reachableRedis, redisCpuUs } from './redis-admin.js'
import { connectRoomClients, countProbe, roomsByNode } from './room-clients.js'
import { MESSAGE_SIZE, listenRoomHub, paced, roomMessage, roomName, roomNodeCalls } from './room-node.js'
import { sleep, until } from './wait.js'

const thisFile = fileURLToPath(import.meta.url)
const here = dirname(thisFile)
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const SYSTEMS = ['hub', 'baseline', 'socketio', 'socketio-sharded']

const { values: args } = parseArgs({
  options: {
    node: { type: 'string' }, // internal: the JSON configuration of a node process
    quick: { type: 'boolean', default: false },
    nodes: { type: 'string' },
    clients: { type: 'string' },
    rooms: { type: 'string' },
    rate: { type: 'string' },
    seconds: { type: 'string' },
    'baseline-dist': { type: 'string' },
    systems: { type: 'string' },
    hops: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false }
  }
})

// ---------------------------------------------------------------------------------------------
// A node: one hub or socket.io server on Redis, driven over IPC.

/**
 * Counts the pub/sub messages every ioredis connection of this process receives (`messageBuffer`,
 * `pmessageBuffer`, `smessageBuffer`: ioredis emits one of them for each message, whatever the
 * listeners), and notes the connections' local ports (to tell this run's Redis clients from
 * others). `from` is a file whose `ioredis` is the one the system uses.
 */
async function countPubSub (from, counters, probe) {
  const path = createRequire(from).resolve('ioredis')
  const { Redis } = await import(pathToFileURL(path).href)
  const emit = Redis.prototype.emit
  Redis.prototype.emit = function (event, ...rest) {
    if (event === 'messageBuffer' || event === 'pmessageBuffer' || event === 'smessageBuffer') {
      counters.pubsubIn++
      probe?.received(rest[rest.length - 1])
    } else if (event === 'ready' && this.stream?.localPort !== undefined) {
      counters.redisPorts.add(this.stream.localPort)
      probe?.watchWrites(this.stream)
    }
    return emit.call(this, event, ...rest)
  }
  return Redis
}

/** The hub from a dist/ directory, with the Redis adapter; clients join the room of their query string. */
async function hubNode (cfg, counters, probe) {
  // first, so that the adapter's connections are counted from their first message
  await countPubSub(join(cfg.dist, 'index.js'), counters, probe)
  return listenRoomHub(cfg.dist, { url: cfg.redisUrl, prefix: cfg.prefix })
}

/**
 * socket.io 4 on @socket.io/redis-adapter with ioredis: `createAdapter` (one pattern subscription,
 * every node gets every broadcast) or `createShardedAdapter` (SPUBLISH/SSUBSCRIBE, a channel per
 * room subscribed by the nodes that have a member of it). The adapter's receiving path is wrapped
 * to count what it receives and what it ignores.
 */
async function socketIoNode (cfg, counters, probe) {
  const Redis = await countPubSub(join(here, 'rooms.js'), counters, probe)
  const http = await import('node:http')
  const { Server } = await import('socket.io')
  const { RedisAdapter, createShardedAdapter } = await import('@socket.io/redis-adapter')
  const pub = new Redis(cfg.redisUrl)
  const sub = pub.duplicate()
  pub.on('error', () => {})
  sub.on('error', () => {})
  const own = { received: 0, unknownRoom: 0, own: 0 }
  let adapter
  if (cfg.system === 'socketio') {
    class CountedAdapter extends RedisAdapter {
      onmessage (pattern, channel, message) {
        own.received++
        const name = channel.toString()
        if (name.startsWith(this.channel)) {
          const room = name.slice(this.channel.length, -1)
          if (room !== '' && !this.hasRoom(room)) own.unknownRoom++
        }
        return super.onmessage(pattern, channel, message)
      }
    }
    // socket.io calls `new` on it: a function, not an arrow
    adapter = function (nsp) { return new CountedAdapter(nsp, pub, sub, { key: cfg.prefix }) }
  } else {
    adapter = createShardedAdapter(pub, sub, { channelPrefix: cfg.prefix, subscriptionMode: 'dynamic' })
  }
  const server = http.createServer()
  const io = new Server(server, { transports: ['websocket'], serveClient: false, perMessageDeflate: false, adapter })
  const nsp = io.of('/')
  if (cfg.system === 'socketio-sharded') {
    // The sharded adapter's subscription handler calls this.onRawMessage, then this.onMessage.
    const instance = nsp.adapter
    const onRawMessage = instance.onRawMessage.bind(instance)
    const onMessage = instance.onMessage.bind(instance)
    instance.onRawMessage = (message, channel) => {
      own.received++
      return onRawMessage(message, channel)
    }
    instance.onMessage = (message, offset) => {
      if (message.uid === instance.uid) own.own++
      return onMessage(message, offset)
    }
  }
  io.on('connection', (socket) => socket.join(String(socket.handshake.query.room)))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: server.address().port,
    send (room, text) { io.to(room).emit('m', text) },
    clients: () => io.engine.clientsCount,
    roomSize: (room) => nsp.adapter.rooms.get(room)?.size ?? 0,
    counters: () => cfg.system === 'socketio'
      ? { received: own.received, unknownRoom: own.unknownRoom }
      : { received: own.received, own: own.own },
    async close () {
      await new Promise((resolve) => io.close(() => resolve()))
      await Promise.allSettled([pub.quit(), sub.quit()])
    }
  }
}

async function runNode (cfg) {
  const counters = { pubsubIn: 0, redisPorts: new Set() }
  const probe = cfg.hops ? hopProbe() : undefined
  const system = cfg.system === 'hub' || cfg.system === 'baseline'
    ? await hubNode(cfg, counters, probe)
    : await socketIoNode(cfg, counters, probe)
  const names = Array.from({ length: cfg.rooms }, (_, i) => roomName(i))
  // every room, this node's own too: most broadcasts are for rooms of other nodes
  const everyRoom = names.map((_, i) => i)

  /**
   * `rate` broadcasts per second for `ms`, each to a room drawn at random among all of them. `dry`:
   * the same timers, draws and messages, but nothing sent (what the driver itself costs the node).
   */
  function run ({ rate, ms, phase, seed, dry = false }) {
    return paced({
      rate,
      ms,
      seed,
      targets: everyRoom,
      rooms: cfg.rooms,
      send (room) {
        const text = roomMessage(phase, cfg.index, room)
        if (!dry) system.send(names[room], text)
      }
    })
  }

  serve({
    ...roomNodeCalls(system),
    snapshot: () => ({ cpu: process.cpuUsage(), pubsubIn: counters.pubsubIn, counters: system.counters(), rss: process.memoryUsage().rss, redisPorts: [...counters.redisPorts] }),
    run,
    hopsReset: () => probe?.reset(),
    hopsReport: () => probe?.report(),
    close: () => system.close()
  })
  process.send({ ready: true, port: system.port })
}

// ---------------------------------------------------------------------------------------------
// The driver: clients, measurement, report.

killChildrenOnExit()

/** Redis's CPU time, network bytes, (S)PUBLISH counts and connected clients so far. */
async function redisSnapshot (redis) {
  const cpuUs = await redisCpuUs(redis)
  const stats = parseInfo(await redis.info('stats'))
  const commands = parseInfo(await redis.info('commandstats'))
  const clients = parseInfo(await redis.info('clients'))
  return {
    cpuUs,
    netOut: Number(stats.total_net_output_bytes),
    netIn: Number(stats.total_net_input_bytes),
    publish: callsOf(commands.cmdstat_publish),
    spublish: callsOf(commands.cmdstat_spublish),
    connectedClients: Number(clients.connected_clients)
  }
}

/**
 * The clients of the run and what they receive: `sink.phase` is the phase counted; messages of
 * other phases (the warm-up's stragglers) are not.
 */
function makeSink (nodes) {
  return {
    phase: -1,
    received: 0,
    perNode: new Array(nodes).fill(0),
    misrouted: 0,
    local: [],
    remote: [],
    probeRound: 0,
    probeGot: null,
    /** Clients that the servers closed (none should be); `closing` once this process closes them. */
    disconnected: 0,
    closing: false,
    offsets: new Array(nodes).fill(0)
  }
}

/** One delivered payload (the text of the hub's frame, or the string argument of socket.io's event). */
function onPayload (sink, client, text) {
  if (text.charCodeAt(0) === 112) { // "p <round> <room>": a readiness probe
    countProbe(sink, client, text)
    return
  }
  const now = nowMicros()
  const [stamp, phase, origin, room] = text.split(' ', 4)
  if (Number(phase) !== sink.phase) return
  sink.received++
  sink.perNode[client.node]++
  if (Number(room) !== client.room) sink.misrouted++
  const latencyMs = (now - (Number(stamp) - sink.offsets[Number(origin)])) / 1000
  if (Number(origin) === client.node) sink.local.push(latencyMs)
  else sink.remote.push(latencyMs)
}

/** Channels (and shard channels) of a prefix, and the patterns of the whole server. */
async function channelsOf (redis, prefix) {
  const channels = await redis.call('PUBSUB', 'CHANNELS', `${prefix}*`)
  const shard = await redis.call('PUBSUB', 'SHARDCHANNELS', `${prefix}*`).catch(() => [])
  const patterns = await redis.call('PUBSUB', 'NUMPAT')
  return { channels: channels.length, shardChannels: shard.length, patternsOnServer: Number(patterns) }
}

/** Runs `phase`: every node broadcasts at rate/N; waits until every delivery is in (or timeout). */
async function runPhase (nodes, owned, members, sink, { rate, ms, phase, seedBase }) {
  sink.phase = phase
  sink.received = 0
  sink.perNode.fill(0)
  sink.misrouted = 0
  sink.local = []
  sink.remote = []
  const results = await Promise.all(nodes.map((node, i) => node.call('run', { rate: rate / nodes.length, ms, phase, seed: seedBase + i })))
  const sentPerRoom = new Array(members.length).fill(0)
  for (const result of results) result.perRoom.forEach((count, room) => { sentPerRoom[room] += count })
  const expectedPerNode = owned.map((rooms) => rooms.reduce((sum, room) => sum + sentPerRoom[room] * members[room], 0))
  const expected = expectedPerNode.reduce((a, b) => a + b, 0)
  const drained = await until(() => sink.received >= expected, 15_000)
  return { results, sentPerRoom, expected, expectedPerNode, drained }
}

/** Clients of Redis that are not this run's (another program's work would be in Redis's CPU). */
async function foreignRedisClients (redis, ours) {
  const list = await redis.call('CLIENT', 'LIST')
  let foreign = 0
  for (const line of list.split('\n')) {
    const addr = /(?:^| )addr=(\S+)/.exec(line)?.[1]
    if (addr !== undefined && !ours.has(Number(addr.slice(addr.lastIndexOf(':') + 1)))) foreign++
  }
  return foreign
}

async function runSystem (system, ctx) {
  const { config, WebSocket, redis } = ctx
  const { nodes: N, clients: C, rooms: R } = config
  const runId = randomUUID().slice(0, 8)
  const prefix = system.startsWith('socketio') ? `sio-bench-rooms-${runId}` : `fwh-bench-rooms:${runId}`
  const dist = system === 'hub' ? ctx.hubDist : ctx.baselineDist
  const owned = roomsByNode(N, R)
  const sink = makeSink(N)
  const nodes = []
  const sockets = []
  const t0 = performance.now()
  const loadAverage = os.loadavg()[0]
  try {
    for (let i = 0; i < N; i++) {
      nodes.push(await startChild(thisFile, 'node', { system, index: i, rooms: R, prefix, dist, redisUrl: REDIS_URL, hops: config.hops }, `${system} node ${i}`))
    }
    const clocks = await clockOffsets(nodes.map((node) => node.call))
    sink.offsets = clocks.map((clock) => clock.offsetUs)

    const { members, failed, perNodeClients, unreached } = await connectRoomClients({
      WebSocket,
      nodes,
      owned,
      rooms: R,
      perNode: C,
      socketIo: system.startsWith('socketio'),
      sink,
      // a hub frame's data, or socket.io's string argument: text either way
      onPayload: (client, payload) => onPayload(sink, client, String(payload)),
      sockets,
      warn: (problem) => console.warn(`  ! ${system}: ${problem}`)
    })
    await sleep(500)
    const setupSeconds = (performance.now() - t0) / 1000
    const channels = await channelsOf(redis, prefix)

    // Warm-up (JIT, TCP windows, Redis connections), not counted.
    await runPhase(nodes, owned, members, sink, { rate: config.rate, ms: config.warmupMs, phase: 0, seedBase: 1000 })
    await sleep(200)
    // The driver's own cost on each node: the same pacing with nothing sent.
    const dryBefore = await Promise.all(nodes.map((node) => node.call('snapshot')))
    const dry = await Promise.all(nodes.map((node, i) => node.call('run', { rate: config.rate / N, ms: config.dryMs, phase: 2, seed: 2000 + i, dry: true })))
    const dryAfter = await Promise.all(nodes.map((node) => node.call('snapshot')))
    const dryCpuUs = nodes.reduce((sum, _, k) => sum + cpuUsOf(dryAfter[k].cpu, dryBefore[k].cpu), 0)
    const pacingUsPerBroadcast = dryCpuUs / dry.reduce((sum, result) => sum + result.sent, 0)
    const ours = new Set([redis.stream?.localPort, ...dryAfter.flatMap((snapshot) => snapshot.redisPorts)])

    const nodesBefore = await Promise.all(nodes.map((node) => node.call('snapshot')))
    const redisBefore = await redisSnapshot(redis)
    const machineBefore = machineTimes()
    const driverBefore = process.cpuUsage()
    const wallBefore = performance.now()
    if (config.hops) await Promise.all(nodes.map((node) => node.call('hopsReset')))
    const phase = await runPhase(nodes, owned, members, sink, { rate: config.rate, ms: config.seconds * 1000, phase: 1, seedBase: 1 })
    const nodesAfter = await Promise.all(nodes.map((node) => node.call('snapshot')))
    const hops = config.hops ? await Promise.all(nodes.map((node) => node.call('hopsReport'))) : undefined
    const redisAfter = await redisSnapshot(redis)
    const driverCpu = process.cpuUsage(driverBefore)
    const wallMs = performance.now() - wallBefore
    const machineAfter = machineTimes()
    const foreignClients = await foreignRedisClients(redis, ours)
    await sleep(300) // late duplicates, if any, would show as more than expected
    const received = sink.received

    const broadcasts = phase.results.reduce((sum, result) => sum + result.sent, 0)
    const sendSeconds = Math.max(...phase.results.map((result) => result.ms)) / 1000
    const perNode = nodes.map((node, k) => {
      const cpuUs = cpuUsOf(nodesAfter[k].cpu, nodesBefore[k].cpu)
      // broadcasts of the other nodes to this node's rooms: what its subscription has to bring
      const forItsRooms = phase.results.reduce((sum, result, j) => j === k ? sum : sum + owned[k].reduce((s, room) => s + result.perRoom[room], 0), 0)
      return {
        node: k,
        clients: perNodeClients[k],
        rooms: owned[k].length,
        sent: phase.results[k].sent,
        pubsubIn: nodesAfter[k].pubsubIn - nodesBefore[k].pubsubIn,
        forItsRooms,
        counters: delta(nodesAfter[k].counters, nodesBefore[k].counters),
        cpuMs: cpuUs / 1000,
        cpuUsPerBroadcast: cpuUs / broadcasts,
        rssMB: nodesAfter[k].rss / 2 ** 20,
        delivered: sink.perNode[k],
        expected: phase.expectedPerNode[k]
      }
    })
    const redisDelta = delta(redisAfter, redisBefore)
    const nodeCpuUs = perNode.reduce((sum, node) => sum + node.cpuMs * 1000, 0)
    const all = latencySummary([...sink.local, ...sink.remote])
    return {
      system,
      label: ctx.labels[system],
      prefix,
      broadcasts,
      sendSeconds,
      ratePerSecond: broadcasts / sendSeconds,
      setupSeconds,
      loadAverage,
      clientsFailed: failed,
      clientsDisconnected: sink.disconnected,
      roomsUnreached: unreached.length,
      clocks,
      channels,
      deliveries: { expected: phase.expected, received, lost: Math.max(0, phase.expected - received), extra: Math.max(0, received - phase.expected), misrouted: sink.misrouted, drained: phase.drained },
      latencyMs: { all, local: latencySummary(sink.local), crossNode: latencySummary(sink.remote) },
      nodeCpuUsPerBroadcast: nodeCpuUs / broadcasts,
      pacingCpuUsPerBroadcast: pacingUsPerBroadcast,
      nodeCpuUsPerBroadcastNet: nodeCpuUs / broadcasts - pacingUsPerBroadcast,
      redisCpuUsPerBroadcast: redisDelta.cpuUs / broadcasts,
      redisBytesOutPerBroadcast: redisDelta.netOut / broadcasts,
      redisBytesInPerBroadcast: redisDelta.netIn / broadcasts,
      redisPublishes: { publish: redisDelta.publish, spublish: redisDelta.spublish },
      redisConnectedClients: redisAfter.connectedClients,
      // how busy the machine was over the measured window (latency tails are queueing when it is full)
      machineBusyPercent: machineBusyPercent(machineAfter, machineBefore),
      clientProcessCpuPercent: 100 * (driverCpu.user + driverCpu.system) / 1000 / wallMs,
      redisCpuPercent: 100 * redisDelta.cpuUs / 1000 / wallMs,
      redisForeignClients: foreignClients,
      hops,
      pubsubInPerNode: perNode.reduce((sum, node) => sum + node.pubsubIn, 0) / N,
      forItsRoomsPerNode: perNode.reduce((sum, node) => sum + node.forItsRooms, 0) / N,
      perNode
    }
  } finally {
    sink.closing = true
    for (const socket of sockets) socket.terminate()
    await Promise.all(nodes.map(stopChild))
  }
}

// ---------------------------------------------------------------------------------------------
// Report.

const fixed = (value, digits) => value === null || value === undefined || Number.isNaN(value) ? '-' : value.toFixed(digits)
const lat = (s) => `${fixed(s.p50, 2)} / ${fixed(s.p99, 2)} / ${fixed(s.max, 2)} ms (n ${s.n})`

function countersText (system, counters) {
  if (system === 'socketio') return `adapter onmessage ${counters.received}, unknown room ${counters.unknownRoom}`
  if (system === 'socketio-sharded') return `adapter onRawMessage ${counters.received}, own ${counters.own}`
  // every counter of the adapter (a newer adapter's too), not the gauges
  return Object.entries(counters)
    .filter(([key]) => key !== 'adapter.publishers' && key !== 'adapter.pendingBytes')
    .map(([key, value]) => `${key.slice('adapter.'.length)} ${value}`).join(', ')
}

function printSystem (r, config) {
  console.log(`\n## ${r.system}: ${r.label}`)
  console.log('')
  console.log('| node | clients | rooms | broadcasts sent | pub/sub msgs in | for its rooms (from others) | not for it | system counters | CPU ms | CPU µs/bcast | deliveries got/expected |')
  console.log('|---|---|---|---|---|---|---|---|---|---|---|')
  for (const n of r.perNode) {
    console.log(`| ${n.node} | ${n.clients} | ${n.rooms} | ${n.sent} | ${n.pubsubIn} | ${n.forItsRooms} | ${n.pubsubIn - n.forItsRooms} | ${countersText(r.system, n.counters)} | ${fixed(n.cpuMs, 0)} | ${fixed(n.cpuUsPerBroadcast, 1)} | ${n.delivered}/${n.expected} |`)
  }
  const d = r.deliveries
  const loss = d.lost > 0 || d.extra > 0 || d.misrouted > 0
    ? ` — ${d.lost} LOST, ${d.extra} extra, ${d.misrouted} to the wrong room`
    : ' (none lost)'
  if (r.clientsFailed > 0 || r.clientsDisconnected > 0 || r.roomsUnreached > 0) {
    console.log(`! ${r.clientsFailed} client(s) failed to open, ${r.clientsDisconnected} were closed by their server, ${r.roomsUnreached} room(s) never got a probe`)
  }
  console.log('')
  console.log(`broadcasts ${r.broadcasts} in ${fixed(r.sendSeconds, 2)} s (${fixed(r.ratePerSecond, 0)}/s, target ${config.rate}/s); deliveries ${d.received}/${d.expected}${loss}`)
  console.log(`pub/sub messages in per node: ${fixed(r.pubsubInPerNode, 0)}, of which ${fixed(r.forItsRoomsPerNode, 0)} for its rooms from other nodes (${fixed(r.pubsubInPerNode / r.forItsRoomsPerNode, 2)}x)`)
  console.log(`node CPU per broadcast (all ${config.nodes} nodes): ${fixed(r.nodeCpuUsPerBroadcast, 1)} µs, ${fixed(r.nodeCpuUsPerBroadcastNet, 1)} µs without the driver's pacing (${fixed(r.pacingCpuUsPerBroadcast, 1)} µs, measured with nothing sent); Redis CPU per broadcast: ${fixed(r.redisCpuUsPerBroadcast, 1)} µs; Redis bytes out/in per broadcast: ${fixed(r.redisBytesOutPerBroadcast, 0)}/${fixed(r.redisBytesInPerBroadcast, 0)}`)
  console.log(`over the run: machine ${fixed(r.machineBusyPercent, 0)}% busy (all cores), the client process ${fixed(r.clientProcessCpuPercent, 0)}% of a core, Redis ${fixed(r.redisCpuPercent, 0)}%`)
  console.log(`latency p50 / p99 / max: all ${lat(r.latencyMs.all)}; same node ${lat(r.latencyMs.local)}; cross-node ${lat(r.latencyMs.crossNode)}`)
  console.log(`Redis: ${r.channels.channels} channel(s) and ${r.channels.shardChannels} shard channel(s) under the run's prefix, ${r.channels.patternsOnServer} pattern subscription(s) on the server; PUBLISH ${r.redisPublishes.publish}, SPUBLISH ${r.redisPublishes.spublish}; ${r.redisConnectedClients} clients connected`)
  if (r.hops !== undefined) {
    const us = (s) => s.n === 0 ? '-' : `${s.p50} / ${s.p99} / ${s.max} µs`
    r.hops.forEach((h, k) => console.log(`node ${k}: event-loop delay p99 / max ${fixed(h.loopDelayMs.p99, 1)} / ${fixed(h.loopDelayMs.max, 1)} ms; ` +
      `stamp to written to Redis p50 / p99 / max ${us(h.writtenUs)}; stamp to read by the subscriber ${us(h.receivedUs)}`))
  }
  if (r.redisForeignClients > 0) console.log(`! ${r.redisForeignClients} Redis client(s) of other programs were connected: Redis CPU includes their work`)
}

function printComparison (results) {
  if (results.length === 0) return
  const rows = [
    ['broadcasts', (r) => String(r.broadcasts)],
    ['pub/sub msgs in per node', (r) => fixed(r.pubsubInPerNode, 0)],
    ['  of which for its rooms', (r) => fixed(r.forItsRoomsPerNode, 0)],
    ['node CPU µs / broadcast', (r) => fixed(r.nodeCpuUsPerBroadcast, 1)],
    ['  without the pacing', (r) => fixed(r.nodeCpuUsPerBroadcastNet, 1)],
    ['Redis CPU µs / broadcast', (r) => fixed(r.redisCpuUsPerBroadcast, 1)],
    ['Redis bytes out / broadcast', (r) => fixed(r.redisBytesOutPerBroadcast, 0)],
    ['latency p50 ms', (r) => fixed(r.latencyMs.all.p50, 2)],
    ['latency p99 ms', (r) => fixed(r.latencyMs.all.p99, 2)],
    ['latency max ms', (r) => fixed(r.latencyMs.all.max, 2)],
    ['cross-node p50 ms', (r) => fixed(r.latencyMs.crossNode.p50, 2)],
    ['cross-node p99 ms', (r) => fixed(r.latencyMs.crossNode.p99, 2)],
    ['machine busy % (all cores)', (r) => fixed(r.machineBusyPercent, 0)],
    ['deliveries got/expected', (r) => `${r.deliveries.received}/${r.deliveries.expected}`],
    ['lost', (r) => String(r.deliveries.lost)],
    ['channels / shard channels', (r) => `${r.channels.channels} / ${r.channels.shardChannels}`]
  ]
  console.log('\n## comparison\n')
  console.log(`| metric | ${results.map((r) => r.system).join(' | ')} |`)
  console.log(`|---|${results.map(() => '---:').join('|')}|`)
  for (const [label, pick] of rows) console.log(`| ${label} | ${results.map(pick).join(' | ')} |`)
}

/** Why a system cannot run here, or undefined when it can. */
async function unavailable (system, ctx) {
  if (system === 'hub' || system === 'baseline') {
    const dist = system === 'hub' ? ctx.hubDist : ctx.baselineDist
    if (dist === undefined) return 'no --baseline-dist given'
    for (const file of ['index.js', join('adapters', 'redis', 'index.js')]) {
      if (!existsSync(join(dist, file))) return `${join(dist, file)} does not exist${system === 'hub' ? ' (run npm run build)' : ''}`
    }
    try {
      createRequire(join(dist, 'index.js')).resolve('ioredis')
    } catch {
      return `ioredis cannot be resolved from ${dist}`
    }
    return undefined
  }
  for (const name of ['socket.io', '@socket.io/redis-adapter', 'ioredis']) {
    try {
      await import(name)
    } catch {
      return `package ${name} is not installed`
    }
  }
  if (system === 'socketio-sharded' && ctx.redisMajor < 7) return `Redis ${ctx.redisVersion} has no sharded pub/sub (7.0 or later needed)`
  return undefined
}

const USAGE = 'node bench/rooms.js [--quick] [--nodes N] [--clients C] [--rooms R] [--rate B] [--seconds S] [--baseline-dist path] [--systems hub,baseline,socketio,socketio-sharded]'

function usage (message) {
  console.error(`rooms bench: ${message}\nusage: ${USAGE}`)
  process.exit(2)
}

async function main () {
  const quick = args.quick
  const number = (name, fallback) => {
    const value = Number(args[name] ?? fallback)
    if (!(value > 0)) usage(`--${name} must be a positive number`)
    return value
  }
  const config = {
    quick,
    nodes: number('nodes', quick ? 2 : 4),
    clients: number('clients', quick ? 300 : 2000),
    rooms: number('rooms', quick ? 100 : 1000),
    rate: number('rate', quick ? 400 : 1000),
    seconds: number('seconds', quick ? 3 : 10),
    hops: args.hops,
    messageBytes: MESSAGE_SIZE
  }
  config.warmupMs = quick ? 1000 : 2000
  config.dryMs = quick ? 1000 : 3000
  if (config.rooms < config.nodes) usage('--rooms must be at least --nodes (every node owns rooms)')
  const systems = (args.systems ?? SYSTEMS.join(',')).split(',').map((name) => name.trim()).filter((name) => name !== '')
  for (const name of systems) if (!SYSTEMS.includes(name)) usage(`unknown system ${name} (known: ${SYSTEMS.join(', ')})`)

  let WebSocket, Redis
  try {
    ({ default: WebSocket } = await import('ws'));
    ({ Redis } = await import('ioredis'))
  } catch {
    console.error('rooms bench: needs the ws and ioredis packages (npm ci)')
    process.exit(1)
  }
  const redis = await reachableRedis(Redis, REDIS_URL)
  if (redis === undefined) {
    console.error(`rooms bench: no Redis at ${REDIS_URL} (set REDIS_URL)`)
    process.exit(1)
  }
  const redisVersion = parseInfo(await redis.info('server')).redis_version ?? '0'
  const baselineDist = args['baseline-dist'] === undefined ? undefined : resolve(args['baseline-dist'])
  const ctx = {
    config,
    WebSocket,
    redis,
    redisVersion,
    redisMajor: Number(redisVersion.split('.')[0]),
    hubDist: join(here, '..', 'dist'),
    baselineDist,
    labels: {
      hub: `fastify-ws-hub, this worktree's build (${join(here, '..', 'dist')}), redisAdapter`,
      baseline: `fastify-ws-hub, baseline build (${baselineDist ?? '-'}), redisAdapter`,
      socketio: 'socket.io 4 + @socket.io/redis-adapter createAdapter (ioredis; one pattern subscription per node)',
      'socketio-sharded': 'socket.io 4 + @socket.io/redis-adapter createShardedAdapter (ioredis; SPUBLISH/SSUBSCRIBE, subscriptionMode dynamic)'
    }
  }

  // this worktree's commit; a --baseline-dist build is identified by its path
  const info = machineInfo(here)
  const membersPerRoom = config.nodes * config.clients / config.rooms
  console.log(`rooms bench${quick ? ' (quick)' : ''}: ${info.nproc} x ${info.cpu}, Node ${info.node}, commit ${info.commit}, Redis ${redisVersion} at ${REDIS_URL}`)
  console.log(`${config.nodes} nodes x ${config.clients} clients, ${config.rooms} rooms (room i on node i % ${config.nodes}, about ${fixed(membersPerRoom, 1)} members each); ` +
    `${config.rate} room broadcasts/s for ${config.seconds} s (after ${config.warmupMs / 1000} s of warm-up), ${MESSAGE_SIZE}-byte payloads, rooms drawn at random among all`)
  console.log('(every process shares this machine: the clients, the nodes and Redis compete for the same cores)')

  const results = []
  const skipped = {}
  const failures = {}
  try {
    for (const system of systems) {
      const why = await unavailable(system, ctx)
      if (why !== undefined) {
        skipped[system] = why
        console.log(`\n## ${system}: skipped: ${why}`)
        continue
      }
      const started = performance.now()
      try {
        const result = await runSystem(system, ctx)
        results.push(result)
        printSystem(result, config)
        console.log(`(${system}: ${fixed((performance.now() - started) / 1000, 1)} s in all, ${fixed(result.setupSeconds, 1)} s of it to open the clients and check the rooms; load average ${fixed(result.loadAverage, 2)} at its start; clock offsets ${result.clocks.map((c) => c.shared ? '0 (shared)' : `${fixed(c.offsetUs, 0)} µs`).join(', ')})`)
      } catch (error) {
        failures[system] = String(error?.stack ?? error)
        console.log(`\n## ${system}: FAILED: ${error?.message ?? error}`)
      }
    }
  } finally {
    redis.disconnect()
  }
  printComparison(results)
  const output = { bench: 'rooms', machine: info, redisVersion, config, systems: results, skipped, failures }
  mkdirSync(join(here, 'results'), { recursive: true })
  const file = join(here, 'results', quick ? 'rooms-quick.json' : 'rooms.json')
  writeFileSync(file, JSON.stringify(output, null, 2) + '\n')
  console.log(`\n(results also in ${file})`)
  console.log(JSON.stringify(output))
  if (Object.keys(failures).length > 0) process.exitCode = 1
}

// Last, once every const above is initialised.
if (args.node !== undefined) await runNode(JSON.parse(args.node))
else if (args.help) console.log(USAGE)
else await main()
