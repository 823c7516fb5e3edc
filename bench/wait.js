// Waiting in the benches: a pause, and polling a condition until a deadline.

/**
 * Resolves after `ms` milliseconds.
 * @param {number} ms
 * @returns {Promise<void>}
 */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Polls `condition` (which may be async) every `everyMs` until it holds or `timeoutMs` has passed.
 * Polling rather than events: what is waited for (other processes' state, messages counted in
 * sinks) has no single event to listen to.
 * @param {() => boolean | Promise<boolean>} condition
 * @param {number} timeoutMs
 * @param {number} [everyMs]
 * @returns {Promise<boolean>} true once the condition held, false on the timeout
 */
export async function until (condition, timeoutMs, everyMs = 5) {
  const deadline = performance.now() + timeoutMs
  while (!(await condition())) {
    if (performance.now() > deadline) return false
    await sleep(everyMs)
  }
  return true
}
