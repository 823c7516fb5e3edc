// What the two recovery benches (bench/recovery.js for the hub, bench/recovery-socketio.js for
// socket.io) measure and print the same way, so that their figures sit side by side: the
// measured part of a broadcast case, the check of a replay's sequence numbers, the tables.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cpuUsOf, machineBusyPercent, machineTimes } from './measure.js'
import { redisCpuUs } from './redis-admin.js'
import { sleep, until } from './wait.js'

/** Deletes every Redis key of one run (its prefix), so that runs leave nothing behind. */
export async function cleanRedis (redis, prefix) {
  let cursor = '0'
  let deleted = 0
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) deleted += await redis.del(...keys)
  } while (cursor !== '0')
  return deleted
}

/**
 * Connects `clients` fleet clients, split evenly over the nodes, and waits until the nodes count them all.
 * @param {{ path: string, protocol: string }} how the fleet's connect arguments for this server
 */
export async function connectFleet (fleet, nodes, clients, how) {
  const per = Math.floor(clients / nodes.length)
  for (const [i, node] of nodes.entries()) {
    const n = i === nodes.length - 1 ? clients - per * (nodes.length - 1) : per
    const result = await fleet.call('connect', { n, port: node.port, ...how })
    if (result.failed > 0) throw new Error(`${result.failed} of ${n} ${how.protocol} clients failed to connect to ${node.label}`)
  }
  const counted = async () => (await Promise.all(nodes.map((node) => node.call('count')))).reduce((a, b) => a + b, 0)
  if (!(await until(async () => (await counted()) === clients, 10_000, 50))) throw new Error(`only ${await counted()} of ${clients} clients registered`)
}

/**
 * The measured part of a broadcast case: 100 broadcasts to warm up (not counted), then
 * `plan.broadcasts` paced at `plan.rate` from the first node; CPU of the nodes, the fleet and
 * Redis per delivery, latency, and how busy the machine was.
 */
export async function measureBroadcasts (label, nodes, fleet, redis, plan) {
  const [a] = nodes
  let received = await fleet.call('received')
  await a.call('paced', { rate: plan.rate, count: 100 })
  const warm = await fleet.call('waitFor', { target: received + 100 * plan.clients, timeoutMs: 15_000 })
  if (warm.timedOut) throw new Error(`${label}: warm-up deliveries incomplete (${warm.received - received} of ${100 * plan.clients})`)
  await sleep(200)

  received = await fleet.call('received')
  const cpuBefore = await Promise.all(nodes.map((node) => node.call('cpu')))
  const fleetBefore = await fleet.call('cpu')
  const redisBefore = await redisCpuUs(redis)
  const machineBefore = machineTimes()
  await fleet.call('latencyStart')
  const { sent, ms } = await a.call('paced', { rate: plan.rate, count: plan.broadcasts })
  const expected = sent * plan.clients
  const wait = await fleet.call('waitFor', { target: received + expected, timeoutMs: 15_000 })
  const latency = await fleet.call('latencyStop')
  const cpuAfter = await Promise.all(nodes.map((node) => node.call('cpu')))
  const fleetAfter = await fleet.call('cpu')
  const redisAfter = await redisCpuUs(redis)
  const busy = machineBusyPercent(machineTimes(), machineBefore)
  const delivered = wait.received - received
  const serverCpuUs = cpuAfter.reduce((sum, after, i) => sum + cpuUsOf(after, cpuBefore[i]), 0)
  return {
    clients: plan.clients,
    broadcasts: sent,
    rate: plan.rate,
    paceMs: Math.round(ms),
    delivered,
    lost: expected - delivered,
    cpuUsPerDelivery: serverCpuUs / delivered,
    cpuUsPerDeliveryByNode: cpuAfter.map((after, i) => cpuUsOf(after, cpuBefore[i]) / delivered),
    redisCpuUsPerDelivery: (redisAfter - redisBefore) / delivered,
    fleetCpuUsPerDelivery: cpuUsOf(fleetAfter, fleetBefore) / delivered,
    p50Ms: latency.p50,
    p99Ms: latency.p99,
    maxMs: latency.max,
    machineBusyPercent: busy
  }
}

/** What a replay's sequence numbers hold against `first..last`: missing, twice, out of order. */
export function checkSeqs (seqs, first, last) {
  const seen = new Set()
  let duplicates = 0
  let outOfOrder = 0
  let previous = -Infinity
  for (const s of seqs) {
    if (seen.has(s)) duplicates++
    seen.add(s)
    if (s < previous) outOfOrder++
    previous = s
  }
  const missingSeqs = []
  for (let s = first; s <= last; s++) if (!seen.has(s)) missingSeqs.push(s)
  return { missing: missingSeqs.length, duplicates, outOfOrder, missingSeqs: missingSeqs.slice(0, 10) }
}

/** A figure for a table: '-' when there is none. */
export const fmt = (value, digits) => value === null || value === undefined ? '-' : typeof value === 'number' ? value.toFixed(digits) : String(value)

/** The broadcast cases as a table (a skipped case says why). */
export function broadcastTable (rows) {
  const head = ['variant', 'CPU/deliv us', 'Redis us', 'p50 ms', 'p99 ms', 'max ms', 'lost', 'busy %']
  const lines = [head[0].padEnd(44) + head.slice(1).map((h) => h.padStart(13)).join('')]
  for (const r of rows) {
    if (r.skipped !== undefined) {
      lines.push(r.variant.padEnd(44) + `  skipped: ${r.skipped}`)
      continue
    }
    lines.push(r.variant.padEnd(44) + [fmt(r.cpuUsPerDelivery, 2), fmt(r.redisCpuUsPerDelivery, 2), fmt(r.p50Ms, 2), fmt(r.p99Ms, 2), fmt(r.maxMs, 2), fmt(r.lost, 0), fmt(r.machineBusyPercent, 0)].map((c) => c.padStart(13)).join(''))
  }
  return lines.join('\n')
}
/** The replay cases as a table (a skipped case says why). */
export function replayTable (rows) {
  const head = ['case', 'recovered', 'replay ms', 'connect ms', 'srv CPU ms', 'received', 'missing', 'dups', 'disorder']
  const lines = [head[0].padEnd(30) + head.slice(1).map((h) => h.padStart(12)).join('')]
  for (const r of rows) {
    if (r.skipped !== undefined) {
      lines.push(r.case.padEnd(30) + `  skipped: ${r.skipped}`)
      continue
    }
    lines.push(r.case.padEnd(30) + [String(r.recovered), fmt(r.replayMs, 1), fmt(r.connectMs, 1), fmt(r.serverCpuMs, 1), fmt(r.received, 0), fmt(r.missing, 0), fmt(r.duplicates, 0), fmt(r.outOfOrder, 0)].map((c) => c.padStart(12)).join(''))
  }
  return lines.join('\n')
}

/** Writes a run's results to `<dir>/results/<name>.json` and prints them, with the run's length. */
export function writeResults (dir, name, output) {
  mkdirSync(join(dir, 'results'), { recursive: true })
  const file = join(dir, 'results', `${name}.json`)
  writeFileSync(file, JSON.stringify(output, null, 2) + '\n')
  console.log(JSON.stringify(output))
  console.log(`\ndone in ${output.seconds.toFixed(0)} s; results in ${file}`)
}

/** Calls `emit` `count` times paced at `rate`/s (a late timer catches up, so the rate offered holds). */
export async function pacedEmits (emit, rate, count) {
  const started = performance.now()
  let sent = 0
  await new Promise((resolve) => {
    const tick = () => {
      const elapsed = performance.now() - started
      while (sent < count && sent * 1000 / rate <= elapsed) { emit(); sent++ }
      if (sent >= count) resolve()
      else setTimeout(tick, Math.max(0, sent * 1000 / rate - (performance.now() - started)))
    }
    tick()
  })
  return { sent, ms: performance.now() - started }
}
