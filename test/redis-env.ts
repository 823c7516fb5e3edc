import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'
import { Redis } from 'ioredis'

/** The Redis the tests use when one is reachable: `REDIS_URL`, default the local one. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** A key and channel prefix no other test shares. */
export function uniquePrefix (): string {
  return `fwh-test:${randomUUID()}`
}

/** Polls an async condition until it holds, or fails after `timeoutMs` naming `what`. */
export async function eventually (condition: () => Promise<boolean> | boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** A client of our own for the tests' raw commands (PUBLISH of garbage, INFO, EXISTS), closed after the test. */
export function rawClient (t: TestContext, url: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  t.after(() => redis.disconnect())
  return redis
}

/** Whether a Redis answers PING at this URL (one attempt, one second at most). */
export async function reachable (url: string): Promise<boolean> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 1000, retryStrategy: () => null, maxRetriesPerRequest: 0 })
  redis.on('error', () => {})
  try {
    await redis.connect()
    return await redis.ping() === 'PONG'
  } catch {
    return false
  } finally {
    redis.disconnect()
  }
}

/** A free TCP port on the loopback interface. */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** Whether `redis-server` can be started here. */
export const hasRedisServerBinary = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0

/** A redis-server process of the test's own. */
export interface RedisServer {
  readonly port: number
  readonly url: string
  /** Kills it with SIGKILL (no goodbye to its clients) and waits until it is gone. */
  kill (): Promise<void>
  /** Starts it again on the same port, empty, and waits until it answers. */
  start (): Promise<void>
  /** Stops it with SIGSTOP: its connections stay open and nothing answers (a stalled Redis). */
  pause (): void
  /** Lets a paused server go on with SIGCONT. */
  resume (): void
}

/** Every redis-server started by this process, killed when it exits whatever happened. */
const started = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of started) child.kill('SIGKILL')
})

/**
 * Starts `redis-server` (no persistence) on a free port or the given one, and waits until it
 * answers PING. `args` go to redis-server after the test's own (e.g. a config directive).
 */
export async function startRedisServer (port?: number, args: string[] = []): Promise<RedisServer> {
  port ??= await freePort()
  const url = `redis://127.0.0.1:${port}`
  let child: ChildProcess | undefined
  const server: RedisServer = {
    port,
    url,
    async kill () {
      const running = child
      if (running === undefined) return
      child = undefined
      if (running.exitCode === null && running.signalCode === null) {
        const exited = once(running, 'exit')
        running.kill('SIGKILL')
        await exited
      }
      started.delete(running)
    },
    pause () {
      child?.kill('SIGSTOP')
    },
    resume () {
      child?.kill('SIGCONT')
    },
    async start () {
      const spawned = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args], {
        stdio: 'ignore'
      })
      spawned.unref()
      child = spawned
      started.add(spawned)
      const deadline = Date.now() + 5000
      while (!await reachable(url)) {
        if (Date.now() > deadline || spawned.exitCode !== null) throw new Error(`redis-server did not start on port ${port}`)
        await new Promise(resolve => setTimeout(resolve, 20))
      }
    }
  }
  await server.start()
  return server
}

/** Skips the test with a message; under CI (env `CI` set) fails it instead, since a skip there hides a gap. */
function unavailable (t: TestContext, reason: string): undefined {
  if (process.env.CI !== undefined && process.env.CI !== '') assert.fail(`cannot run this Redis test: ${reason} (CI is set, so this fails rather than skips)`)
  t.skip(`Redis test skipped: ${reason}`)
  return undefined
}

let shared: Promise<string | undefined> | undefined

/**
 * The URL of a Redis for this test: `REDIS_URL` when it answers, else a redis-server of this test
 * process's own. With neither, the test is skipped with a message (failed under CI).
 */
export async function useRedis (t: TestContext): Promise<string | undefined> {
  shared ??= (async () => {
    if (await reachable(REDIS_URL)) return REDIS_URL
    if (!hasRedisServerBinary) return undefined
    return (await startRedisServer()).url
  })()
  const url = await shared
  if (url !== undefined) return url
  return unavailable(t, `no Redis at ${REDIS_URL} (REDIS_URL) and no redis-server binary to start one`)
}

/**
 * A redis-server of this test's own (for tests that kill it), stopped after the test. Without the
 * binary the test is skipped with a message (failed under CI).
 */
export async function useRedisServer (t: TestContext, port?: number, args: string[] = []): Promise<RedisServer | undefined> {
  if (!hasRedisServerBinary) return unavailable(t, 'it needs a redis-server binary of its own to kill and restart, and there is none on this machine')
  const server = await startRedisServer(port, args)
  t.after(() => server.kill())
  return server
}

/** A Node process of the test's own running an ES module script; it talks in lines of JSON on stdout. */
export interface ScriptProcess {
  child: ChildProcess
  /** The next line it prints, parsed; rejects if it exits first. */
  nextLine<T> (): Promise<T>
}

/**
 * Runs an ES module script (plain JavaScript on the built package, no tsx, so that it starts fast)
 * in a process of its own, from the package root; killed after the test if still alive.
 */
export function spawnScript (t: TestContext, script: string, env: Record<string, string>, stdin: 'ignore' | 'pipe' = 'ignore'): ScriptProcess {
  const child = spawn(process.execPath, ['--input-type=module', '--eval', script], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { ...process.env, ...env },
    stdio: [stdin, 'pipe', 'inherit']
  })
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const lines = createInterface({ input: child.stdout! })
  const queued: string[] = []
  lines.on('line', line => queued.push(line))
  const exited = once(child, 'exit')
  return {
    child,
    async nextLine<T> (): Promise<T> {
      while (queued.length === 0) {
        await Promise.race([
          once(lines, 'line'),
          exited.then(([code]) => { throw new Error(`child exited with ${code} before printing a line`) })
        ])
      }
      return JSON.parse(queued.shift() as string) as T
    }
  }
}

/** A hub in a process of its own (a script that prints `{ port, nodeId }` once it listens). */
export interface ChildHub {
  child: ChildProcess
  /** ws://127.0.0.1:<port> */
  url: string
  nodeId: string
}

/** Runs a hub script with `spawnScript` and waits until it listens; killed after the test if still alive. */
export async function spawnHub (t: TestContext, script: string, env: Record<string, string>): Promise<ChildHub> {
  const { child, nextLine } = spawnScript(t, script, env)
  const { port, nodeId } = await nextLine<{ port: number, nodeId: string }>()
  return { child, url: `ws://127.0.0.1:${port}`, nodeId }
}
