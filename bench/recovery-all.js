// The session-recovery comparison in one run: the hub's bench (bench/recovery.js) and socket.io's
// (bench/recovery-socketio.js), one after the other in the same invocation (never at the same time:
// they would share the cores), with the same flags, and their tables side by side at the end.
// Run after `npm run build`; needs a Redis at REDIS_URL (default redis://127.0.0.1:6379).
//
//   node bench/recovery-all.js [--first=hub|socket.io] [any flag of the two benches: --quick,
//                              --clients N, --broadcasts N, --rate N, --missed N, --live-reps N,
//                              --live-rate N, --only=broadcast,replay]
//
// Each bench prints as it goes (its JSON lines and tables) and writes its own result file; this one
// then reads both and writes bench/results/recovery-all(-quick).json with the two, the machine's
// load average before and after each, and a combined table of the broadcast rows (CPU per delivery,
// p99) and the replay rows (replay ms, server CPU, exactly-once check).
import { fork } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { trackChild, killChildrenOnExit } from './children.js'
import { fmt } from './recovery-shared.js'

const here = dirname(fileURLToPath(import.meta.url))
const passed = process.argv.slice(2).filter((arg) => !arg.startsWith('--first'))
const firstArg = process.argv.slice(2).find((arg) => arg.startsWith('--first'))
const quick = passed.includes('--quick')
const suffix = quick ? '-quick' : ''
const benches = [
  { name: 'hub', script: 'recovery.js', result: `recovery${suffix}.json` },
  { name: 'socket.io', script: 'recovery-socketio.js', result: `recovery-socketio${suffix}.json` }
]
if (firstArg?.split('=')[1] === 'socket.io') benches.reverse()

/** Runs one bench to its end; rejects when it fails. */
function run (bench) {
  return new Promise((resolve, reject) => {
    const child = trackChild(fork(join(here, bench.script), passed, { stdio: 'inherit' }))
    child.once('exit', (code, signal) => {
      if (code === 0) resolve()
      else reject(new Error(`${bench.script} ended with ${code ?? signal}`))
    })
  })
}

function table (results) {
  const lines = []
  const broadcast = results.flatMap(({ name, data }) => (data.broadcast ?? []).map((row) => ({ name, ...row })))
  if (broadcast.length > 0) {
    lines.push('broadcast'.padEnd(52) + ['CPU/deliv us', 'Redis us', 'p99 ms', 'lost'].map((h) => h.padStart(13)).join(''))
    for (const r of broadcast) {
      const label = `${r.name}: ${r.variant}`.padEnd(52)
      lines.push(label + (r.skipped !== undefined ? `  skipped: ${r.skipped}` : [fmt(r.cpuUsPerDelivery, 2), fmt(r.redisCpuUsPerDelivery, 2), fmt(r.p99Ms, 2), fmt(r.lost, 0)].map((c) => c.padStart(13)).join('')))
    }
  }
  const replay = results.flatMap(({ name, data }) => (data.replay ?? []).map((row) => ({ name, ...row })))
  if (replay.length > 0) {
    lines.push('', 'replay'.padEnd(52) + ['recovered', 'replay ms', 'srv CPU ms', 'missing', 'dups', 'disorder'].map((h) => h.padStart(11)).join(''))
    for (const r of replay) {
      const label = `${r.name}: ${r.case}`.padEnd(52)
      lines.push(label + (r.skipped !== undefined ? `  skipped: ${r.skipped}` : [String(r.recovered), fmt(r.replayMs, 1), fmt(r.serverCpuMs, 1), fmt(r.missing, 0), fmt(r.duplicates, 0), fmt(r.outOfOrder, 0)].map((c) => c.padStart(11)).join('')))
    }
  }
  return lines.join('\n')
}

killChildrenOnExit()
const began = Date.now()
const results = []
for (const bench of benches) {
  const loadBefore = os.loadavg()
  console.log(`\n=== ${bench.name}: node bench/${bench.script} ${passed.join(' ')} (load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')})\n`)
  await run(bench)
  const data = JSON.parse(readFileSync(join(here, 'results', bench.result), 'utf8'))
  results.push({ name: bench.name, loadBefore, loadAfter: os.loadavg(), data })
}
const text = table(results)
const hub = results.find((r) => r.name === 'hub')?.data
const ratioText = (hub?.ratios ?? []).map((r) => `hub, ${r.nodes} node${r.nodes > 1 ? 's' : ''}, ${r.adapter}: recovery on / off CPU ${r.cpuRatio.toFixed(2)}x (target <= ${r.target}x)`).join('\n')
console.log(`\n=== side by side (same run)\n${text}\n\n${ratioText}`)
const file = join(here, 'results', `recovery-all${suffix}.json`)
const output = { bench: 'recovery-all', quick, args: passed, order: benches.map((b) => b.name), seconds: (Date.now() - began) / 1000, runs: results, table: text }
writeFileSync(file, JSON.stringify(output, null, 2) + '\n')
console.log(`\ndone in ${output.seconds.toFixed(0)} s; results in ${file}`)
