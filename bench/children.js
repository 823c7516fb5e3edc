// The benches' child processes: started and stopped over IPC, and never left running when the
// bench ends (normally, by an exception, or by a signal).
import { fork } from 'node:child_process'
import { caller } from './ipc.js'
import { sleep } from './wait.js'

/** Every tracked child still running. */
const running = new Set()

/**
 * Tracks a child so that `killChildren()` ends it; it leaves the set once it exits.
 * @template {import('node:child_process').ChildProcess} T
 * @param {T} child
 * @returns {T} the same child
 */
export function trackChild (child) {
  running.add(child)
  child.once('exit', () => running.delete(child))
  return child
}

/** SIGKILLs every tracked child still running (no grace: this is the last resort on the way out). */
export function killChildren () {
  for (const child of running) child.kill('SIGKILL')
  running.clear()
}

/**
 * Kills every tracked child when this process exits, and on each of `signals`, after which it exits
 * with 130. Without it an interrupted bench would leave servers (and their ports, Redis
 * subscriptions, CPU) behind.
 * @param {object} [options]
 * @param {NodeJS.Signals[]} [options.signals]
 * @param {() => void} [options.then] more cleanup, after the kill (e.g. removing temp dirs)
 */
export function killChildrenOnExit ({ signals = ['SIGINT', 'SIGTERM'], then } = {}) {
  const cleanUp = () => {
    killChildren()
    then?.()
  }
  process.on('exit', cleanUp)
  for (const signal of signals) {
    process.on(signal, () => {
      cleanUp()
      process.exit(130)
    })
  }
}

/**
 * Forks `script` with `--<role> <cfg as JSON>` (tracked) and resolves once the child sends
 * `{ ready: true }`; rejects if it exits first.
 * @param {string} script the file to fork (a bench forks itself in another role)
 * @param {string} role
 * @param {object} cfg
 * @param {string} label names the child in errors and reports
 * @returns {Promise<{ label: string, child: import('node:child_process').ChildProcess, port: number | undefined, call: (cmd: string, args?: object) => Promise<any> }>}
 *   `port`: what the child's ready message said it listens on, if anything
 */
export async function startChild (script, role, cfg, label) {
  const child = trackChild(fork(script, [`--${role}`, JSON.stringify(cfg)]))
  const ready = await new Promise((resolve, reject) => {
    const onExit = (code, signal) => reject(new Error(`${label} exited (${code ?? signal}) before it was ready`))
    child.once('exit', onExit)
    child.on('message', function onReady (message) {
      if (message?.ready === true) {
        child.off('message', onReady)
        child.off('exit', onExit)
        resolve(message)
      }
    })
  })
  return { label, child, port: ready.port, call: caller(child) }
}

/**
 * Stops a child started by `startChild`: asks it to `close` (up to 5 s), closes the IPC channel
 * (the child exits when its parent goes away), and SIGKILLs it if it is still there 5 s later.
 * @param {{ child: import('node:child_process').ChildProcess, call: (cmd: string) => Promise<unknown> }} proc
 */
export async function stopChild (proc) {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return
  const exited = new Promise((resolve) => proc.child.once('exit', resolve))
  try {
    await Promise.race([proc.call('close'), sleep(5000)])
  } catch {}
  if (proc.child.connected) proc.child.disconnect()
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}
