// Two hubs on Redis against one hub alone: cross-node deliveries per second and the latency that
// the Redis hop adds. Run after `npm run build`:
//
//   node bench/two-node.js [--quick] [--clients N]
//
// Every hub is a child process (this same file with --node); every ws client (raw `ws`, no
// permessage-deflate) lives in this process, so one monotonic clock stamps a message when it is
// sent and again when each client gets it. A publisher client sends to node A, whose route
// broadcasts what it gets; the receivers are split over node A and node B.
// Needs a Redis at REDIS_URL (default redis://127.0.0.1:6379).
import { fork } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { reachableRedis } from './redis-admin.js'
import { until } from './wait.js'

const { values: args } = parseArgs({
  options: {
    node: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    clients: { type: 'string' }
  }
})
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

if (args.node) await runNode()
else await main()

/** A hub: broadcasts whatever a client sends to every other client of the cluster. */
async function runNode () {
  const { default: Fastify } = await import('fastify')
  const { default: fastifyWsHub } = await import('../dist/index.js')
  const { redisAdapter } = await import('../dist/adapters/redis/index.js')
  const app = Fastify()
  await app.register(fastifyWsHub, {
    heartbeat: false,
    handshakeMessage: false,
    readTimeout: 0,
    adapter: process.env.PREFIX === undefined ? undefined : redisAdapter({ url: REDIS_URL, prefix: process.env.PREFIX })
  })
  app.hub.route({
    url: '/ws',
    onMessage (client, data) { client.hub.broadcast(data, { except: client }) }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  process.on('message', async (message) => {
    if (message === 'stats') process.send({ stats: app.hub.stats() })
    if (message === 'stop') {
      await app.close()
      process.disconnect()
    }
  })
  process.send({ port: app.server.address().port })
}

/** Starts a hub process; `prefix` set means the Redis adapter, unset the in-memory one. */
async function startNode (prefix) {
  const env = { ...process.env }
  if (prefix === undefined) delete env.PREFIX
  else env.PREFIX = prefix
  const child = fork(fileURLToPath(import.meta.url), ['--node'], { env })
  const [message] = await once(child, 'message')
  return { child, url: `ws://127.0.0.1:${message.port}/ws` }
}

async function stopNode (node) {
  node.child.send('stats')
  const [{ stats }] = await once(node.child, 'message')
  const exited = once(node.child, 'exit')
  node.child.send('stop')
  await exited
  return stats
}

/** Opens `count` clients on `url`, 50 at a time; each adds its deliveries to `sink`. */
async function openClients (url, count, sink) {
  const clients = []
  for (let i = 0; i < count; i += 50) {
    const batch = []
    for (let j = i; j < Math.min(count, i + 50); j++) {
      const socket = new WebSocket(url, { perMessageDeflate: false })
      socket.on('message', (data) => {
        const text = data.toString()
        const stamp = Number(text.slice(text.indexOf(' ') + 1))
        sink.received++
        if (sink.latencies !== undefined) sink.latencies.push(performance.now() - stamp)
      })
      batch.push(once(socket, 'open').then(() => socket))
    }
    clients.push(...await Promise.all(batch))
  }
  return clients
}

function percentile (sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

/**
 * One scenario: `groups` of receivers (one sink each) and a publisher on the first node.
 * Latency: messages paced at `rate`/s for `seconds`. Throughput: `burst` messages sent at once.
 */
async function measure (publisherUrl, groups, { rate, seconds, burst }) {
  const publisher = new WebSocket(publisherUrl, { perMessageDeflate: false })
  await once(publisher, 'open')
  const expected = (messages) => groups.map(group => group.clients.length * messages)

  let seq = 0
  const pace = (count) => new Promise(resolve => {
    let sent = 0
    const timer = setInterval(() => {
      publisher.send(`${seq++} ${performance.now()}`)
      if (++sent === count) { clearInterval(timer); resolve() }
    }, 1000 / rate)
  })
  // Warm-up (JIT, TCP windows, Redis connections), not recorded.
  for (const group of groups) { group.sink.received = 0; group.sink.latencies = undefined }
  const warmUp = Math.ceil(rate / 2)
  await pace(warmUp)
  await until(() => groups.every((group, i) => group.sink.received >= expected(warmUp)[i]), 10_000)

  for (const group of groups) { group.sink.received = 0; group.sink.latencies = [] }
  const paced = rate * seconds
  await pace(paced)
  const wanted = expected(paced)
  await until(() => groups.every((group, i) => group.sink.received >= wanted[i]), 10_000)
  const latency = groups.map(group => {
    const sorted = group.sink.latencies.sort((x, y) => x - y)
    return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), lost: wanted[groups.indexOf(group)] - group.sink.received }
  })

  for (const group of groups) { group.sink.received = 0; group.sink.latencies = undefined }
  const startedAt = performance.now()
  for (let i = 0; i < burst; i++) publisher.send(`${seq++} ${performance.now()}`)
  const wantedBurst = expected(burst)
  const finishedAt = groups.map(() => NaN)
  await until(() => {
    groups.forEach((group, i) => {
      if (Number.isNaN(finishedAt[i]) && group.sink.received >= wantedBurst[i]) finishedAt[i] = performance.now()
    })
    return finishedAt.every(at => !Number.isNaN(at))
  }, 60_000)
  const throughput = groups.map((group, i) => {
    const seconds = ((Number.isNaN(finishedAt[i]) ? performance.now() : finishedAt[i]) - startedAt) / 1000
    return { deliveries: group.sink.received, perSecond: group.sink.received / seconds, complete: group.sink.received >= wantedBurst[i] }
  })
  publisher.close()
  return { latency, throughput }
}

function format (ms) {
  return `${ms.toFixed(2)} ms`
}

function signed (ms) {
  return `${ms < 0 ? '-' : '+'}${format(Math.abs(ms))}`
}

async function main () {
  const quick = args.quick
  const clients = Number(args.clients ?? (quick ? 200 : 1000))
  // Latency is measured under light load (about 20k deliveries/s in all), so that it shows the hop,
  // not queueing in the one client process; throughput is measured on a burst.
  const rate = Math.max(5, Math.min(200, Math.round(20_000 / clients)))
  const plan = quick ? { rate, seconds: 1, burst: 200 } : { rate, seconds: 3, burst: 1000 }
  const { Redis } = await import('ioredis')
  const probe = await reachableRedis(Redis, REDIS_URL)
  if (probe === undefined) {
    console.error(`two-node bench: no Redis at ${REDIS_URL} (set REDIS_URL)`)
    process.exit(1)
  }
  probe.disconnect()

  console.log(`two-node bench: ${clients} clients, latency at ${plan.rate} msg/s for ${plan.seconds} s, throughput on a burst of ${plan.burst}`)

  // One hub alone: every client on it.
  const single = await startNode(undefined)
  const singleSink = {}
  const singleClients = await openClients(single.url, clients, singleSink)
  const alone = await measure(single.url, [{ clients: singleClients, sink: singleSink }], plan)
  for (const socket of singleClients) socket.terminate()
  await stopNode(single)

  // Two hubs on Redis: half the clients on each, the publisher on A.
  const prefix = `fastify-ws-hub-bench:${randomUUID()}`
  const a = await startNode(prefix)
  const b = await startNode(prefix)
  const localSink = {}
  const remoteSink = {}
  const local = await openClients(a.url, Math.ceil(clients / 2), localSink)
  const remote = await openClients(b.url, Math.floor(clients / 2), remoteSink)
  const pair = await measure(a.url, [{ clients: local, sink: localSink }, { clients: remote, sink: remoteSink }], plan)
  for (const socket of [...local, ...remote]) socket.terminate()
  const statsA = await stopNode(a)
  const statsB = await stopNode(b)

  const [aloneLatency] = alone.latency
  const [localLatency, remoteLatency] = pair.latency
  const rows = [
    ['one hub, all clients', aloneLatency, alone.throughput[0]],
    ['two hubs, clients on A (local)', localLatency, pair.throughput[0]],
    ['two hubs, clients on B (via Redis)', remoteLatency, pair.throughput[1]]
  ]
  console.log('')
  console.log('| scenario | p50 | p99 | deliveries/s (burst) |')
  console.log('|---|---|---|---|')
  for (const [name, latency, throughput] of rows) {
    const lost = latency.lost > 0 ? ` (${latency.lost} lost)` : ''
    const partial = throughput.complete ? '' : ' (incomplete)'
    console.log(`| ${name} | ${format(latency.p50)}${lost} | ${format(latency.p99)} | ${Math.round(throughput.perSecond)}${partial} |`)
  }
  console.log('')
  const added = (from, to) => `p50 ${signed(to.p50 - from.p50)}, p99 ${signed(to.p99 - from.p99)}`
  // Same run, same fan-out size: what the Redis hop itself adds.
  console.log(`added by the Redis hop (clients on B vs clients on A): ${added(localLatency, remoteLatency)}`)
  // One hub fans out to every client, each of two to half of them: fan-out time differs too.
  console.log(`clients on B vs one hub with all the clients: ${added(aloneLatency, remoteLatency)}`)
  const both = pair.throughput[0].deliveries + pair.throughput[1].deliveries
  const slowest = Math.max(...pair.throughput.map(group => group.deliveries / group.perSecond))
  console.log(`cross-node deliveries/s: ${Math.round(pair.throughput[1].perSecond)} (${pair.throughput[1].deliveries} deliveries on B); ` +
    `both hubs together: ${Math.round(both / slowest)}/s against ${Math.round(alone.throughput[0].perSecond)}/s for one hub`)
  console.log('(every process shares this machine: the client process, both hubs and Redis compete for the same cores)')
  console.log(`node A adapter: published ${statsA['adapter.published']}, dropped ${statsA['adapter.dropped']}; node B adapter: received ${statsB['adapter.received']}`)
}
