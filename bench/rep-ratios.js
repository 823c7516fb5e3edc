// Per-repetition ratios of a run.js result: the implementations of one repetition run back to back,
// so the ratio of two of them within a repetition shares most of the load that other processes put
// on the machine at that time; the median of those ratios moves less than the ratio of medians.
//
//   node bench/rep-ratios.js [bench/results/latest.json]
//
// For every hub variant of the run (hub, hub-base, hub-metrics), at the run's largest size: its
// fan-out latency p50 / p99 / max over the reference's (ws-cork), and its upgrade rate and server
// CPU per upgrade over @fastify/websocket's (fastify-ws), which every hub upgrade goes through.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const file = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), 'results', 'latest.json')
const run = JSON.parse(readFileSync(file, 'utf8'))
const sessions = run.sessions ?? []
const impls = [...new Set(sessions.map((s) => s.impl))]
const size = Math.max(...run.config.sizes)
const reps = []
for (let i = 0; i < sessions.length; i += impls.length) {
  reps.push(Object.fromEntries(sessions.slice(i, i + impls.length).map((s) => [s.impl, s[size]])))
}

const median = (values) => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

const metrics = [
  ['latency p50', 'ws-cork', (at) => at?.latency?.p50],
  ['latency p99', 'ws-cork', (at) => at?.latency?.p99],
  ['latency max', 'ws-cork', (at) => at?.latency?.max],
  ['upgrades/s', 'fastify-ws', (at) => at?.storm?.upgradesPerSec],
  ['server CPU/upgrade', 'fastify-ws', (at) => at?.storm?.serverCpuUsPerUpgrade]
]
console.log(`${file}: ${reps.length} repetition(s), ${size} clients; ratio of each repetition, then their median`)
for (const impl of impls.filter((name) => name.startsWith('hub'))) {
  for (const [label, reference, pick] of metrics) {
    if (!impls.includes(reference)) continue
    const ratios = reps.map((rep) => pick(rep[impl]) / pick(rep[reference]))
    if (!ratios.some(Number.isFinite)) continue
    console.log(`${`${impl} / ${reference}`.padEnd(24)} ${label.padEnd(20)} ${ratios.map((r) => r.toFixed(2)).join(' ')}   median ${median(ratios).toFixed(2)}`)
  }
}
