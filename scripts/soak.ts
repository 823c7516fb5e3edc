/**
 * Soak test (`npm run soak`): 500 clients connect, join rooms, exchange a room broadcast and
 * leave, in loops, for 60 s (SOAK_CLIENTS and SOAK_SECONDS change that). Then it checks that the
 * hub is empty within 1 s, the heap after GC is within +5 MB of where it started, no
 * MaxListenersExceededWarning was emitted and the timers are the ones there were before.
 * Exits 1 when a check fails.
 */
import Fastify from 'fastify'
import fastifyWsHub from '../dist/index.js'
import { churn, churnRoute, closed, openClient } from '../test/churn.js'
import { mib } from '../test/raw-client.js'
import { activeResources, heapAfterGc, since, trackTimers, watchWarnings } from '../test/probes.js'

const clients = Number(process.env.SOAK_CLIENTS ?? 500)
const seconds = Number(process.env.SOAK_SECONDS ?? 60)

const warnings = watchWarnings('MaxListenersExceededWarning')
const timers = trackTimers()
const app = Fastify()
await app.register(fastifyWsHub, { heartbeat: { interval: 1000 } })
churnRoute(app)
await app.listen({ port: 0, host: '127.0.0.1' })
const { port } = app.server.address() as { port: number }
const url = `ws://127.0.0.1:${port}/churn`

async function waitUntil (condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) return false
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  return true
}

await churn({ url, concurrency: 50, durationMs: 1000, seed: 7 })
await waitUntil(() => app.hub.onlineCount() === 0, 1000)
const baseline = { heap: await heapAfterGc(), timeouts: activeResources('Timeout'), liveTimers: await timers.live() }

const sockets = await Promise.all(Array.from({ length: clients }, () => openClient(url)))
await waitUntil(() => app.hub.onlineCount() === clients, 5000)
const steady = { online: app.hub.onlineCount(), timeouts: activeResources('Timeout'), liveTimers: await timers.live() }
for (const socket of sockets) socket.close()
await Promise.all(sockets.map(closed))

console.log(`soak: ${clients} clients for ${seconds} s...`)
const started = performance.now()
const result = await churn({ url, concurrency: clients, durationMs: seconds * 1000 })
const elapsed = since(started)
const drainStart = performance.now()
const drainedInTime = await waitUntil(() => app.hub.onlineCount() === 0 && app.hub.stats().rooms === 0, 1000)
const drained = since(drainStart)
const heapGrowth = await heapAfterGc() - baseline.heap
const after = { timeouts: activeResources('Timeout'), liveTimers: await timers.live() }
const stats = app.hub.stats()
await app.close()

const checks: Array<[string, boolean]> = [
  [`no failed cycle (${result.failures}${result.errors.length > 0 ? ': ' + result.errors.join('; ') : ''})`, result.failures === 0],
  [`count and rooms back to 0 within 1 s (${drained} ms)`, drainedInTime],
  [`heap after GC within +5 MB (${heapGrowth >= 0 ? '+' : ''}${mib(heapGrowth)} MiB)`, heapGrowth < 5 * 1024 * 1024],
  [`no MaxListenersExceededWarning (${warnings.count()})`, warnings.count() === 0],
  [`${clients} open clients add no timer (${baseline.liveTimers} → ${steady.liveTimers}, ${steady.online} open)`, steady.liveTimers === baseline.liveTimers && steady.online === clients],
  [`ref'd timers back to baseline (${baseline.timeouts} → ${steady.timeouts} → ${after.timeouts})`, after.timeouts <= baseline.timeouts && steady.timeouts === baseline.timeouts],
  [`no timer left behind (${after.liveTimers} live, ${baseline.liveTimers} before)`, after.liveTimers <= baseline.liveTimers]
]
console.log(`${result.cycles} cycles in ${elapsed} ms (${Math.round(result.cycles / elapsed * 1000)}/s), ${stats.messagesIn} messages in, ${stats.messagesOut} out, ${stats.heartbeatTimeouts} heartbeat timeouts`)
for (const [what, ok] of checks) console.log(`${ok ? 'ok    ' : 'FAILED'} ${what}`)
warnings.stop()
timers.stop()
process.exitCode = checks.every(([, ok]) => ok) ? 0 : 1
