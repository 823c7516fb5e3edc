import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createApp, listen, waitFor, waitForAsync } from './helpers.js'
import { churn, churnRoute, closed, openClient } from './churn.js'
import { mib } from './raw-client.js'
import { activeResources, heapAfterGc, since, trackTimers, watchWarnings } from './probes.js'

const CONCURRENCY = 200
const DURATION = 5000

test(`churn: ${CONCURRENCY} concurrent clients connecting, joining rooms and leaving for ${DURATION / 1000} s leave nothing behind`, async (t) => {
  const warnings = watchWarnings('MaxListenersExceededWarning')
  const timers = trackTimers()
  t.after(() => { warnings.stop(); timers.stop() })
  const app = await createApp(t, { heartbeat: { interval: 1000 } })
  churnRoute(app)
  const url = `${await listen(app)}/churn`

  // Warm up (JIT, pools) so the heap baseline is not the cold one.
  await churn({ url, concurrency: 20, durationMs: 300, seed: 7 })
  await waitFor(() => app.hub.onlineCount() === 0, 5000, 'the warm-up clients to leave')
  const baseline = { heap: await heapAfterGc(), timeouts: activeResources('Timeout'), liveTimers: await timers.live() }

  // All at once: timers must not grow with the number of clients (one heartbeat timer for all).
  const sockets = await Promise.all(Array.from({ length: CONCURRENCY }, () => openClient(url)))
  await waitFor(() => app.hub.onlineCount() === CONCURRENCY, 5000, 'every client to open')
  const steady = { timeouts: activeResources('Timeout'), liveTimers: await timers.live() }
  for (const socket of sockets) socket.close()
  await Promise.all(sockets.map(closed))

  // churn() resolves once every socket it opened has closed, client side.
  const result = await churn({ url, concurrency: CONCURRENCY, durationMs: DURATION })
  const drainStart = performance.now()
  // The server side follows a few turns later, later still on a loaded machine.
  await waitFor(() => app.hub.onlineCount() === 0 && app.hub.stats().rooms === 0, 5000, 'count and rooms back to 0')
  const drained = since(drainStart)
  await waitForAsync(async () => await timers.live() <= baseline.liveTimers, 5000, 'live timers back to the baseline').catch(() => {})
  const after = { timeouts: activeResources('Timeout'), liveTimers: await timers.live() }
  // After a full GC, once the sockets and their timers are gone.
  const heapGrowth = await heapAfterGc() - baseline.heap

  assert.equal(result.failures, 0, result.errors.join('; '))
  assert.ok(result.cycles > CONCURRENCY, `only ${result.cycles} cycles`)
  assert.equal(result.echoes, result.cycles)
  assert.equal(steady.timeouts, baseline.timeouts, 'no ref\'d timer per client')
  assert.equal(steady.liveTimers, baseline.liveTimers, 'no timer per client, unref\'d ones included')
  assert.ok(after.liveTimers <= baseline.liveTimers, `${after.liveTimers} live timers after, ${baseline.liveTimers} before`)
  assert.ok(heapGrowth < 5 * 1024 * 1024, `heap grew ${mib(heapGrowth)} MiB`)
  assert.equal(warnings.count(), 0, 'no MaxListenersExceededWarning')
  t.diagnostic(`${result.cycles} cycles in ${DURATION} ms (${Math.round(result.cycles / DURATION * 1000)}/s), count and rooms 0 after ${drained} ms, heap after GC ${heapGrowth >= 0 ? '+' : ''}${mib(heapGrowth)} MiB, live timers ${baseline.liveTimers} → ${steady.liveTimers} with ${CONCURRENCY} open → ${after.liveTimers}`)
})
