import { createHook } from 'node:async_hooks'
import { runInNewContext } from 'node:vm'
import { setFlagsFromString } from 'node:v8'

/**
 * The collector: `gc` when node runs with --expose-gc (as `npm run test:unit` does), else one
 * exposed at run time, for a file run on its own without the flag.
 */
function exposeGc (): () => void {
  if (typeof globalThis.gc === 'function') return globalThis.gc as () => void
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}
const collect = exposeGc()

/** Runs full garbage collections (a few, so that finalisers and weak maps settle). */
export async function fullGc (): Promise<void> {
  for (let i = 0; i < 3; i++) {
    collect()
    await new Promise(resolve => setImmediate(resolve))
  }
}

/** Heap in use after a full GC, in bytes. */
export async function heapAfterGc (): Promise<number> {
  await fullGc()
  return process.memoryUsage().heapUsed
}

/** Number of active resources of a type ('Timeout', 'TCPSocketWrap', 'TCPServerWrap'...). */
export function activeResources (type: string): number {
  return process.getActiveResourcesInfo().filter(name => name === type).length
}

/** Counts the process warnings of one name (e.g. MaxListenersExceededWarning) until `stop()`. */
export function watchWarnings (name: string): { count: () => number, stop: () => void } {
  let seen = 0
  const onWarning = (warning: Error): void => {
    if (warning.name === name) seen++
  }
  process.on('warning', onWarning)
  return { count: () => seen, stop: () => process.off('warning', onWarning) }
}

/** Milliseconds since `start`, rounded. */
export function since (start: number): number {
  return Math.round(performance.now() - start)
}

/**
 * Tracks live timers (setTimeout / setInterval objects, unref'd ones included, which
 * `process.getActiveResourcesInfo()` does not list) from now until `stop()`.
 */
export function trackTimers (): { live: () => Promise<number>, stop: () => void } {
  const live = new Set<number>()
  const hook = createHook({
    init (asyncId, type) { if (type === 'Timeout') live.add(asyncId) },
    destroy (asyncId) { live.delete(asyncId) }
  })
  hook.enable()
  // A cleared timer's destroy hook comes a turn later: let those land before counting.
  async function count (): Promise<number> {
    for (let i = 0; i < 3; i++) await new Promise(resolve => setImmediate(resolve))
    return live.size
  }
  return { live: count, stop: () => hook.disable() }
}
