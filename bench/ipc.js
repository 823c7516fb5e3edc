// Request/reply over a child process's IPC channel: every request carries an id, every reply echoes it.

/**
 * Wraps a forked child so that `call(cmd, args)` resolves with the child's reply.
 * @param {import('node:child_process').ChildProcess} child
 * @param {number} timeoutMs how long one call may take before it rejects
 */
export function caller (child, timeoutMs = 120_000) {
  let nextId = 0
  const pending = new Map()
  child.on('message', (message) => {
    const waiter = pending.get(message.id)
    if (waiter === undefined) return
    pending.delete(message.id)
    clearTimeout(waiter.timer)
    if (message.error !== undefined) waiter.reject(new Error(message.error))
    else waiter.resolve(message.result)
  })
  child.on('exit', (code, signal) => {
    for (const waiter of pending.values()) {
      clearTimeout(waiter.timer)
      waiter.reject(new Error(`child exited (${code ?? signal}) during a call`))
    }
    pending.clear()
  })
  return function call (cmd, args = {}) {
    const id = ++nextId
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id)
        reject(new Error(`${cmd}: no reply within ${timeoutMs} ms`))
      }, timeoutMs)
      pending.set(id, { resolve, reject, timer })
      child.send({ id, cmd, args })
    })
  }
}

/**
 * Serves calls in a child: each handler may be async; its result (or error message) is sent back.
 * @param {Record<string, (args: object) => unknown>} handlers
 */
export function serve (handlers) {
  process.on('message', async (message) => {
    const handler = handlers[message.cmd]
    try {
      if (handler === undefined) throw new Error(`unknown command ${message.cmd}`)
      const result = await handler(message.args)
      process.send({ id: message.id, result })
    } catch (error) {
      process.send({ id: message.id, error: String(error?.stack ?? error) })
    }
  })
  // The parent going away ends the child: nothing is left running.
  process.on('disconnect', () => process.exit(0))
}

/** Monotonic time in microseconds (CLOCK_MONOTONIC: the same clock in every process of the machine). */
export function nowMicros () {
  const time = process.hrtime()
  return time[0] * 1e6 + time[1] / 1e3
}

/**
 * The offset of a child's clock to this process's, from the IPC round trip of least delay (of 20).
 * A reading inside the round trip means one clock (offset 0: CLOCK_MONOTONIC is shared by the
 * processes of a Linux machine); otherwise the round trip's midpoint is used.
 * @param {(cmd: string) => Promise<number>} call a `caller` of a child that answers `clock` with its nowMicros()
 * @returns {Promise<{ offsetUs: number, rttUs: number, shared: boolean }>}
 */
export async function clockOffset (call) {
  let best
  for (let i = 0; i < 20; i++) {
    const sent = nowMicros()
    const theirs = await call('clock')
    const back = nowMicros()
    if (best === undefined || back - sent < best.rtt) best = { rtt: back - sent, sent, back, theirs }
  }
  const shared = best.theirs >= best.sent && best.theirs <= best.back
  return { offsetUs: shared ? 0 : best.theirs - (best.sent + best.back) / 2, rttUs: best.rtt, shared }
}

/**
 * The clock offsets of several children (see `clockOffset`), measured one after the other so that
 * no round trip waits behind another's.
 * @param {Array<(cmd: string) => Promise<number>>} calls
 * @returns {Promise<Array<{ offsetUs: number, rttUs: number, shared: boolean }>>}
 */
export async function clockOffsets (calls) {
  const offsets = []
  for (const call of calls) offsets.push(await clockOffset(call))
  return offsets
}
