// What a room broadcast costs the nodes that have no member of the room: the cost that a channel
// per room removes. One node publishes room broadcasts; K other nodes listen, none of them with a
// member of those rooms; each node's CPU is measured over the run. With one channel for the whole
// cluster (a --baseline-dist build from before per-room channels) every listener decodes and
// discards every envelope; with a channel per room, Redis does not send them.
//
//   node bench/routing-cost.js [--quick] [--listeners K] [--broadcasts N] [--baseline-dist path]
//
// Run `npm run build` first. Needs a Redis at REDIS_URL (default redis://127.0.0.1:6379).
// Systems run alternately, twice each, so that a load peak of the shared machine hits both.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

const here = dirname(fileURLToPath(import.meta.url))
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const PAYLOAD = 'x'.repeat(100)
const ROOMS = 1000

const { values: args } = parseArgs({
  options: {
    node: { type: 'string' },
    quick: { type: 'boolean', default: false },
    listeners: { type: 'string' },
    broadcasts: { type: 'string' },
    'baseline-dist': { type: 'string' }
  }
})

if (args.node !== undefined) await runNode(JSON.parse(args.node))
else await main()

/** A hub on Redis with no client: it publishes when told, and reports its CPU time. */
async function runNode ({ dist, prefix }) {
  const { default: Fastify } = await import('fastify')
  const { default: fastifyWsHub } = await import(pathToFileURL(join(dist, 'index.js')).href)
  const { redisAdapter } = await import(pathToFileURL(join(dist, 'adapters', 'redis', 'index.js')).href)
  const app = Fastify()
  await app.register(fastifyWsHub, { heartbeat: false, adapter: redisAdapter({ url: REDIS_URL, prefix }) })
  app.hub.route({ url: '/ws' })
  await app.ready()
  process.on('message', async (message) => {
    if (message.cmd === 'cpu') {
      const { user, system } = process.cpuUsage()
      process.send({ cpuUs: user + system, stats: app.hub.stats() })
    } else if (message.cmd === 'publish') {
      // 100 per turn: bursts as a busy node makes them, pipelined at the end of each turn.
      let sent = 0
      await new Promise(resolve => {
        const burst = () => {
          for (let k = 0; k < 100 && sent < message.count; k++, sent++) app.hub.broadcast(PAYLOAD, { room: `room-${sent % ROOMS}` })
          if (sent < message.count) setImmediate(burst)
          else resolve()
        }
        burst()
      })
      process.send({ sent })
    } else if (message.cmd === 'stop') {
      await app.close()
      process.exit(0)
    }
  })
  process.send({ ready: true })
}

function startNode (dist, prefix) {
  const child = fork(fileURLToPath(import.meta.url), ['--node', JSON.stringify({ dist, prefix })])
  return once(child, 'message').then(() => child)
}

async function ask (child, cmd, extra = {}) {
  child.send({ cmd, ...extra })
  const [reply] = await once(child, 'message')
  return reply
}

/** One run: returns the listeners' CPU per broadcast (µs, each) and the publisher's. */
async function run (dist, listeners, broadcasts) {
  const prefix = `fwh-bench-routing:${Date.now()}:${Math.random().toString(36).slice(2)}`
  const publisher = await startNode(dist, prefix)
  const others = await Promise.all(Array.from({ length: listeners }, () => startNode(dist, prefix)))
  const before = await Promise.all([publisher, ...others].map(child => ask(child, 'cpu')))
  await ask(publisher, 'publish', { count: broadcasts })
  // Let Redis and the listeners drain: until every listener's CPU stops moving.
  let last = before.slice(1).map(reply => reply.cpuUs)
  for (;;) {
    await new Promise(resolve => setTimeout(resolve, 300))
    const now = await Promise.all(others.map(child => ask(child, 'cpu')))
    const moved = now.some((reply, i) => reply.cpuUs - last[i] > 3000)
    last = now.map(reply => reply.cpuUs)
    if (!moved) break
  }
  const after = await Promise.all([publisher, ...others].map(child => ask(child, 'cpu')))
  const listenerUs = others.map((_, i) => (after[i + 1].cpuUs - before[i + 1].cpuUs) / broadcasts)
  const received = after.slice(1).map(reply => reply.stats['adapter.received'] ?? 0)
  const publisherUs = (after[0].cpuUs - before[0].cpuUs) / broadcasts
  await Promise.all([publisher, ...others].map(async child => { child.send({ cmd: 'stop' }); await once(child, 'exit') }))
  return { publisherUs, listenerUs, received }
}

async function main () {
  const listeners = Number(args.listeners ?? 3)
  const broadcasts = Number(args.broadcasts ?? (args.quick ? 5000 : 30000))
  const systems = { hub: join(here, '..', 'dist') }
  if (args['baseline-dist'] !== undefined) systems.baseline = resolve(args['baseline-dist'])
  for (const [name, dist] of Object.entries(systems)) {
    if (!existsSync(join(dist, 'adapters', 'redis', 'index.js'))) throw new Error(`${name}: no build at ${dist}`)
  }
  const results = {}
  for (let round = 0; round < 2; round++) {
    for (const [name, dist] of Object.entries(systems)) {
      const result = await run(dist, listeners, broadcasts)
      ;(results[name] ??= []).push(result)
      console.log(`${name} round ${round + 1}: publisher ${result.publisherUs.toFixed(2)} µs/broadcast; each listener ${result.listenerUs.map(us => us.toFixed(2)).join(', ')} µs/broadcast; envelopes delivered to listeners ${result.received.join(', ')}`)
    }
  }
  console.log(`\n${broadcasts} room broadcasts over ${ROOMS} rooms from one node; ${listeners} other nodes without a member of any of them\n`)
  console.log('| system | publisher CPU µs / broadcast | each listener CPU µs / broadcast | listeners together |')
  console.log('|---|---:|---:|---:|')
  const summary = {}
  for (const [name, runs] of Object.entries(results)) {
    const best = (values) => Math.min(...values)
    const publisher = best(runs.map(r => r.publisherUs))
    const listener = best(runs.map(r => r.listenerUs.reduce((a, b) => a + b, 0) / r.listenerUs.length))
    summary[name] = { publisherUs: publisher, listenerUs: listener }
    console.log(`| ${name} | ${publisher.toFixed(2)} | ${listener.toFixed(2)} | ${(listener * listeners).toFixed(2)} |`)
  }
  console.log('(best of two runs each: the machine is shared)')
  console.log(JSON.stringify({ bench: 'routing-cost', listeners, broadcasts, rooms: ROOMS, summary }))
}
