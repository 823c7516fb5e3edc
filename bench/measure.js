// What the benches measure with: latency percentiles, the CPU time of processes and of the whole
// machine, how much counters grew over a window, and a description of the machine the figures
// come from.
import { execFileSync } from 'node:child_process'
import os from 'node:os'

/**
 * The p-quantile of sorted values (the value at rank floor(n * p), no interpolation).
 * @param {ArrayLike<number>} sorted ascending
 * @param {number} p from 0 to 1
 * @returns {number | null} null when there are no values
 */
export function percentile (sorted, p) {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

/**
 * Count, median, p99 and maximum of latencies (in whatever unit they are given).
 * @param {Iterable<number>} values
 * @returns {{ n: number, p50: number | null, p99: number | null, max: number | null }}
 */
export function latencySummary (values) {
  // a Float64Array sorts numerically (a plain array's default sort compares strings)
  const sorted = Float64Array.from(values).sort()
  return { n: sorted.length, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted.length === 0 ? null : sorted[sorted.length - 1] }
}

/**
 * CPU time (user + system, µs) a process spent between two `process.cpuUsage()` readings.
 * @param {{ user: number, system: number }} after
 * @param {{ user: number, system: number }} before
 */
export const cpuUsOf = (after, before) => (after.user - before.user) + (after.system - before.system)

/**
 * Idle and total CPU time of the machine, all cores (ms): two readings give how busy it was, which
 * tells whether a latency tail is the code measured or queueing on a full machine.
 * @returns {{ idle: number, total: number }}
 */
export function machineTimes () {
  let idle = 0
  let total = 0
  for (const { times } of os.cpus()) {
    idle += times.idle
    total += times.user + times.nice + times.sys + times.idle + times.irq
  }
  return { idle, total }
}

/**
 * How busy the machine's cores were between two `machineTimes()` readings, in percent of all of them.
 * @param {{ idle: number, total: number }} after
 * @param {{ idle: number, total: number }} before
 */
export const machineBusyPercent = (after, before) => 100 * (1 - (after.idle - before.idle) / (after.total - before.total))

/**
 * How much every counter grew between two readings (a counter missing before counts from 0).
 * @param {Record<string, number>} after
 * @param {Record<string, number>} before
 * @returns {Record<string, number>}
 */
export const delta = (after, before) => Object.fromEntries(Object.keys(after).map((key) => [key, after[key] - (before[key] ?? 0)]))

/**
 * The machine and the code the figures come from: cores, CPU model, Node, OS, and the short commit
 * of the checkout holding `cwd` ('unknown' outside git).
 * @param {string} cwd a directory of the checkout
 */
export function machineInfo (cwd) {
  let commit = 'unknown'
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {}
  return { nproc: os.availableParallelism(), cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${os.type()} ${os.release()}`, commit }
}
