// Broadcasts with permessage-deflate (issue 14): server CPU per delivery and memory per connection,
// the hub compressing each broadcast once for every socket (`hub-shared`, the default when
// compression is on) against the hub without compression, ws's per-socket deflate (the hub with
// `serverNoContextTakeover: false`), and socket.io with and without `perMessageDeflate`, in one run.
//
//   flock /tmp/bench.lock node bench/compression.js [--clients=200] [--broadcasts=1000] [--size=2048]
//     [--idle=2000] [--reps=2] [--impl=hub,hub-shared,...] [--json]
//   flock /tmp/bench.lock node bench/compression.js --zlib
//
// `--zlib` measures, in this process, what one compression costs: a zlib context made for each
// call (`deflateRawSync`, what the hub does) against one context kept and reused (a DeflateRaw
// stream, written, flushed and reset per message: asynchronous, on the thread pool, as ws does).
//
// Each implementation runs in a server process of its own, its clients in a fleet process of raw
// sockets (bench/fleet.js: they count frames and never inflate, so the fleet's CPU stays small);
// both are forked from here and driven over IPC. Per repetition and implementation:
//   1. `clients` clients connect (offering `permessage-deflate; client_max_window_bits`, as
//      browsers do, except for the uncompressed implementations) and get 50 warm-up broadcasts;
//   2. `broadcasts` broadcasts of `size` bytes of JSON text, a different text each, 10 per
//      event-loop turn; the server's CPU time (user + system) from the first until the fleet has
//      received every copy, divided by the copies: CPU per delivery;
//   3. server memory (after full GCs) per connection, over the `clients` clients after the
//      traffic (ws keeps a socket's deflate context once it has compressed for it);
//   4. in a fresh server, `idle` clients connect: memory per idle connection before any message,
//      then after one broadcast has reached them all (the figure of the target).
// Implementations alternate in order from one repetition to the next.
import { execFileSync } from 'node:child_process'
import http from 'node:http'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import v8 from 'node:v8'
import zlib from 'node:zlib'
import { runInNewContext } from 'node:vm'
import { killChildrenOnExit, startChild, stopChild } from './children.js'
import { serve } from './ipc.js'
import { cpuUsOf } from './measure.js'

const script = fileURLToPath(import.meta.url)
const fleetScript = join(dirname(script), 'fleet.js')
/** What browsers offer. */
const DEFLATE_OFFER = 'permessage-deflate; client_max_window_bits'
const args = process.argv.slice(2)
const valueOf = (name) => args.find((arg) => arg.startsWith(`--${name}=`))?.split('=')[1]
const roleConfig = (role) => {
  const index = args.indexOf(`--${role}`)
  return index === -1 ? undefined : JSON.parse(args[index + 1])
}

const IMPLS = {
  hub: { label: 'hub, no compression (REF)', compressed: false },
  'hub-shared': { label: 'hub, permessage-deflate, one compression per broadcast (default)', compressed: true },
  'hub-per-socket': { label: 'hub, serverNoContextTakeover: false (ws per-socket deflate)', compressed: true },
  'socket.io': { label: 'socket.io, no compression', compressed: false },
  'socket.io-deflate': { label: 'socket.io, perMessageDeflate: true', compressed: true }
}
const REFERENCE = 'hub'
const WARM_UP = 50
const PER_TURN = 10

/** A different JSON text of about `size` bytes for broadcast number `n`, as a chat or feed sends. */
function messageText (n, size) {
  const items = []
  let length = 40
  for (let i = 0; length < size; i++) {
    const item = `{"id":${n * 100 + i},"user":"user-${(n * 7 + i) % 113}","text":"message ${i} of broadcast ${n}, ${'lorem ipsum dolor '.slice(0, (n + i) % 18)}","at":${1_700_000_000_000 + n * 1000 + i}}`
    items.push(item)
    length += item.length + 1
  }
  return `{"type":"feed","seq":${n},"items":[${items.join(',')}]}`.slice(0, size)
}

// ---------------------------------------------------------------------------------------------
// The server process: one implementation.

async function serverRole ({ impl, size, count }) {
  const texts = Array.from({ length: count }, (_, n) => messageText(n, size))
  let broadcast
  let clients
  let address
  let dropped = () => 0
  if (impl.startsWith('hub')) {
    const { default: Fastify } = await import('fastify')
    const { default: fastifyWsHub } = await import('../dist/index.js')
    const perMessageDeflate = { hub: false, 'hub-shared': true, 'hub-per-socket': { serverNoContextTakeover: false } }[impl]
    const app = Fastify()
    // ws's per-socket deflate queues a burst's messages uncompressed (1,000 x 2 KB per socket):
    // over maxBufferedBytes the hub would drop them as a slow consumer's. No drops here, so that
    // every implementation does the whole work.
    await app.register(fastifyWsHub, { heartbeat: false, handshakeMessage: false, readTimeout: 0, maxBufferedBytes: 1 << 30, websocket: { options: { perMessageDeflate } } })
    app.hub.route({ url: '/ws' })
    await app.listen({ port: 0, host: '127.0.0.1' })
    broadcast = (text) => app.hub.broadcast(text)
    clients = () => app.hub.onlineCount()
    dropped = () => app.hub.stats().dropped
    address = { port: app.server.address().port, path: '/ws', protocol: 'ws' }
  } else {
    const { Server } = await import('socket.io')
    const server = http.createServer()
    // No engine.io ping during the run: the fleet would count it as a message.
    const io = new Server(server, { transports: ['websocket'], serveClient: false, perMessageDeflate: impl === 'socket.io-deflate', pingInterval: 3_600_000, pingTimeout: 3_600_000 })
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    broadcast = (text) => io.emit('m', text)
    clients = () => io.engine.clientsCount
    address = { port: server.address().port, path: '/socket.io/?EIO=4&transport=websocket', protocol: 'socket.io' }
  }
  // Full collections for the memory figures, without asking for --expose-gc on the command line.
  v8.setFlagsFromString('--expose-gc')
  const gc = globalThis.gc ?? runInNewContext('gc')
  let sent = 0
  serve({
    count: () => clients(),
    dropped: () => dropped(),
    cpu: () => ({ ...process.cpuUsage(), wall: performance.now() * 1000 }),
    memory () {
      let last = Infinity
      for (let i = 0; i < 6; i++) {
        gc()
        const used = process.memoryUsage().heapUsed
        if (last - used < 64 * 1024) break
        last = used
      }
      const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage()
      return { rss, heapUsed, external, arrayBuffers }
    },
    /** `n` broadcasts, `perTurn` per event-loop turn, each a different text; resolves after the last turn. */
    burst ({ n, perTurn }) {
      return new Promise((resolve) => {
        let left = n
        const turn = () => {
          for (let k = 0; k < perTurn && left > 0; k++, left--) broadcast(texts[sent++ % texts.length])
          if (left > 0) setImmediate(turn)
          else setImmediate(resolve)
        }
        turn()
      })
    }
  })
  process.send({ ready: true, ...address })
}

// ---------------------------------------------------------------------------------------------
// The driver.

async function waitForCount (server, n) {
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (await server.call('count') >= n) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return false
}

const perConnection = (after, before, n) => ({
  heapBytes: (after.heapUsed - before.heapUsed) / n,
  externalBytes: (after.external - before.external) / n,
  rssBytes: (after.rss - before.rss) / n
})

/** Starts the server and fleet of `impl`, runs `measure` with them, and stops both. */
async function withServer (impl, cfg, measure) {
  const { compressed } = IMPLS[impl]
  const server = await startChild(script, 'server', { impl, size: cfg.size, count: cfg.broadcasts + WARM_UP + 1 }, impl)
  const fleet = await startChild(fleetScript, 'fleet', {}, `${impl} fleet`)
  // startChild keeps only the port of the ready message: the rest comes from the route's protocol.
  const extensions = compressed ? DEFLATE_OFFER : undefined
  const target = impl.startsWith('hub')
    ? { port: server.port, path: '/ws', protocol: 'ws', extensions }
    : { port: server.port, path: '/socket.io/?EIO=4&transport=websocket', protocol: 'socket.io', extensions }
  const connect = async (n, total) => {
    const connected = await fleet.call('connect', { n, ...target })
    if (connected.failed > 0 || !await waitForCount(server, total)) throw new Error(`${impl}: ${connected.failed} of ${n} upgrades failed`)
  }
  try {
    return await measure(server, fleet, connect)
  } finally {
    await stopChild(fleet)
    await stopChild(server)
  }
}

/** Server CPU per delivery of the broadcasts, and memory per connection after them. */
function broadcasts (impl, cfg) {
  return withServer(impl, cfg, async (server, fleet, connect) => {
    const empty = await server.call('memory')
    await connect(cfg.clients, cfg.clients)
    await server.call('burst', { n: WARM_UP, perTurn: PER_TURN })
    await fleet.call('waitFor', { target: WARM_UP * cfg.clients, timeoutMs: 60_000 })
    const base = { received: await fleet.call('received'), ...await fleet.call('wire') }
    const before = await server.call('cpu')
    await server.call('burst', { n: cfg.broadcasts, perTurn: PER_TURN })
    const burstEnd = await server.call('cpu')
    const wait = await fleet.call('waitFor', { target: base.received + cfg.broadcasts * cfg.clients, timeoutMs: 120_000 })
    const after = await server.call('cpu')
    const totals = { received: await fleet.call('received'), ...await fleet.call('wire') }
    const delivered = totals.received - base.received
    const afterTraffic = await server.call('memory')
    return {
      cpuUsPerDelivery: cpuUsOf(after, before) / delivered,
      cpuMs: cpuUsOf(after, before) / 1000,
      burstCpuMs: cpuUsOf(burstEnd, before) / 1000,
      wallMs: (after.wall - before.wall) / 1000,
      delivered,
      complete: !wait.timedOut,
      compressedShare: (totals.compressed - base.compressed) / delivered,
      wireBytesPerMessage: (totals.wireBytes - base.wireBytes) / delivered,
      dropped: await server.call('dropped'),
      memoryAfterTraffic: perConnection(afterTraffic, empty, cfg.clients),
      rssAfterTrafficMiB: afterTraffic.rss / 1048576
    }
  })
}

/** Memory per idle connection in a fresh server: just connected, then after one broadcast reached them all. */
function idle (impl, cfg) {
  return withServer(impl, cfg, async (server, fleet, connect) => {
    const empty = await server.call('memory')
    await connect(cfg.idle, cfg.idle)
    const idleNew = await server.call('memory')
    await server.call('burst', { n: 1, perTurn: 1 })
    await fleet.call('waitFor', { target: cfg.idle, timeoutMs: 60_000 })
    const idleAfterOne = await server.call('memory')
    return { idleNew: perConnection(idleNew, empty, cfg.idle), idleAfterOne: perConnection(idleAfterOne, empty, cfg.idle) }
  })
}

async function session (impl, cfg) {
  return { impl, ...(await broadcasts(impl, cfg)), ...(await idle(impl, cfg)) }
}

function machine () {
  let cpu = os.cpus()[0]?.model ?? 'unknown cpu'
  try {
    cpu = execFileSync('sh', ['-c', "lscpu | sed -n 's/^Model name: *//p'"], { encoding: 'utf8' }).trim() || cpu
  } catch {}
  return `${cpu}, ${os.cpus().length} cores, node ${process.version}, load ${os.loadavg().map((load) => load.toFixed(2)).join(' ')}`
}

const mean = (values) => values.reduce((sum, value) => sum + value, 0) / values.length
const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`

/** µs of CPU and of wall time per compression, for JSON texts of a few sizes, both ways. */
async function zlibCosts () {
  const options = { finishFlush: zlib.constants.Z_SYNC_FLUSH }
  console.log(machine())
  // 0 bytes: what making (and freeing) the context costs by itself.
  for (const size of [0, 2048, 16 * 1024, 125 * 1024, 1300 * 1024]) {
    const texts = Array.from({ length: 50 }, (_, n) => Buffer.from(size === 0 ? '' : messageText(n, size)))
    const count = size === 0 ? 5000 : Math.max(20, Math.min(5000, Math.round(20_000_000 / size)))
    const measure = async (run) => {
      await run(Math.min(200, count))
      const cpu = process.cpuUsage()
      const start = performance.now()
      await run(count)
      return { cpu: cpuUsOf(process.cpuUsage(), cpu) / count, wall: (performance.now() - start) * 1000 / count }
    }
    const fresh = await measure(async (n) => {
      for (let i = 0; i < n; i++) zlib.deflateRawSync(texts[i % texts.length], options)
    })
    const stream = zlib.createDeflateRaw()
    stream.on('data', () => {})
    const reused = await measure(async (n) => {
      for (let i = 0; i < n; i++) {
        stream.write(texts[i % texts.length])
        await new Promise((resolve) => stream.flush(zlib.constants.Z_SYNC_FLUSH, resolve))
        stream.reset()
      }
    })
    stream.close()
    const out = zlib.deflateRawSync(texts[0], options).length - 4
    console.log(`${(size / 1024).toFixed(0).padStart(5)} KB -> ${(out / 1024).toFixed(1)} KB: context per call (deflateRawSync) ${fresh.cpu.toFixed(1)} µs CPU, ${fresh.wall.toFixed(1)} µs wall; ` +
      `reused context (stream, async) ${reused.cpu.toFixed(1)} µs CPU, ${reused.wall.toFixed(1)} µs wall`)
  }
}

async function main () {
  if (args.includes('--zlib')) return zlibCosts()
  killChildrenOnExit()
  const cfg = {
    clients: Number(valueOf('clients') ?? 200),
    broadcasts: Number(valueOf('broadcasts') ?? 1000),
    size: Number(valueOf('size') ?? 2048),
    idle: Number(valueOf('idle') ?? 2000),
    reps: Number(valueOf('reps') ?? 2)
  }
  const chosen = valueOf('impl')?.split(',')
  const impls = Object.keys(IMPLS).filter((impl) => chosen === undefined || impl === REFERENCE || chosen.includes(impl))
  console.log(`compression bench: ${cfg.broadcasts} broadcasts of ${cfg.size} bytes to ${cfg.clients} clients; ${cfg.idle} idle connections; ${cfg.reps} repetitions`)
  console.log(machine())
  const results = Object.fromEntries(impls.map((impl) => [impl, []]))
  for (let rep = 0; rep < cfg.reps; rep++) {
    const order = rep % 2 === 0 ? impls : [...impls].reverse()
    for (const impl of order) {
      const result = await session(impl, cfg)
      results[impl].push(result)
      console.log(`  rep ${rep + 1} ${impl.padEnd(18)} ${result.cpuUsPerDelivery.toFixed(3)} µs/delivery (${result.cpuMs.toFixed(0)} ms CPU, ${result.burstCpuMs.toFixed(0)} ms of it in the broadcast calls, ${result.wallMs.toFixed(0)} ms wall)` +
        `${result.complete ? '' : ' INCOMPLETE'}${result.dropped > 0 ? ` ${result.dropped} DROPPED` : ''}; ${(result.compressedShare * 100).toFixed(0)} % compressed, ${result.wireBytesPerMessage.toFixed(0)} B/msg on the wire; ` +
        `per conn after traffic: heap ${kb(result.memoryAfterTraffic.heapBytes)}, RSS ${kb(result.memoryAfterTraffic.rssBytes)} (RSS ${result.rssAfterTrafficMiB.toFixed(0)} MiB); ` +
        `idle: heap ${kb(result.idleNew.heapBytes)}, RSS ${kb(result.idleNew.rssBytes)}; after one message: heap ${kb(result.idleAfterOne.heapBytes)}, RSS ${kb(result.idleAfterOne.rssBytes)}`)
    }
  }
  const ref = results[REFERENCE]
  const refCpu = mean(ref.map((result) => result.cpuUsPerDelivery))
  const refMemory = (pick) => mean(ref.map(pick))
  console.log(`\n| implementation | CPU µs/delivery | vs ${REFERENCE} | ms CPU for ${cfg.broadcasts} broadcasts | bytes/msg on the wire | per conn after traffic: heap / RSS | vs ${REFERENCE} (heap+ext / RSS) | idle conn after one message: heap / RSS | vs ${REFERENCE} (heap+ext / RSS) |`)
  console.log('|---|---|---|---|---|---|---|---|---|')
  const summary = {}
  for (const impl of impls) {
    const list = results[impl]
    const cpu = mean(list.map((result) => result.cpuUsPerDelivery))
    const heapOf = (memory) => memory.heapBytes + memory.externalBytes
    const traffic = { heap: mean(list.map((result) => heapOf(result.memoryAfterTraffic))), rss: mean(list.map((result) => result.memoryAfterTraffic.rssBytes)) }
    const idle = { heap: mean(list.map((result) => heapOf(result.idleAfterOne))), rss: mean(list.map((result) => result.idleAfterOne.rssBytes)) }
    const refTraffic = { heap: refMemory((result) => heapOf(result.memoryAfterTraffic)), rss: refMemory((result) => result.memoryAfterTraffic.rssBytes) }
    const refIdle = { heap: refMemory((result) => heapOf(result.idleAfterOne)), rss: refMemory((result) => result.idleAfterOne.rssBytes) }
    summary[impl] = { cpu, cpuRatio: cpu / refCpu, traffic, idle, idleRatio: { heap: idle.heap / refIdle.heap, rss: idle.rss / refIdle.rss } }
    console.log(`| ${IMPLS[impl].label} | ${cpu.toFixed(3)} | ${(cpu / refCpu).toFixed(2)}x | ${mean(list.map((result) => result.cpuMs)).toFixed(0)} | ` +
      `${mean(list.map((result) => result.wireBytesPerMessage)).toFixed(0)} | ${kb(traffic.heap)} / ${kb(traffic.rss)} | ${(traffic.heap / refTraffic.heap).toFixed(2)}x / ${(traffic.rss / refTraffic.rss).toFixed(2)}x | ` +
      `${kb(idle.heap)} / ${kb(idle.rss)} | ${(idle.heap / refIdle.heap).toFixed(2)}x / ${(idle.rss / refIdle.rss).toFixed(2)}x |`)
  }
  if (args.includes('--json')) console.log(JSON.stringify({ cfg, results, summary }))
}

const serverConfig = roleConfig('server')
if (serverConfig !== undefined) await serverRole(serverConfig)
else await main()
