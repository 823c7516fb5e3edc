import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { TestContext } from 'node:test'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import WebSocket, { type ClientOptions } from 'ws'
import fastifyWsHub, { type FastifyWsHubOptions } from '../dist/index.js'

/** A Fastify app with the hub registered, closed after the test. */
export async function createApp (
  t: TestContext,
  hubOptions: FastifyWsHubOptions = {},
  fastifyOptions: FastifyServerOptions = {}
): Promise<FastifyInstance> {
  const app = Fastify(fastifyOptions)
  t.after(() => app.close())
  await app.register(fastifyWsHub, { heartbeat: false, ...hubOptions })
  return app
}

/** Listens on a free loopback port and returns the ws:// base URL. */
export async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  return `ws://127.0.0.1:${port}`
}

/** A ws client that records what it receives and how it closed. */
export interface TestClient {
  socket: WebSocket
  messages: string[]
  closed: Promise<{ code: number, reason: string }>
  /** Resolves once `count` messages have arrived. */
  received (count: number, timeoutMs?: number): Promise<string[]>
}

/** Opens a client and waits for the upgrade; rejects with the HTTP status on refusal. */
export async function connect (url: string, options: ClientOptions = {}): Promise<TestClient> {
  const socket = new WebSocket(url, { perMessageDeflate: false, ...options })
  const messages: string[] = []
  const waiters: Array<() => void> = []
  socket.on('message', (data, isBinary) => {
    messages.push(isBinary ? `binary:${(data as Buffer).toString('hex')}` : (data as Buffer).toString())
    for (const wake of waiters.splice(0)) wake()
  })
  const closed = new Promise<{ code: number, reason: string }>(resolve => {
    socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))
  })
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve())
    socket.once('unexpected-response', (_request, response) => {
      reject(Object.assign(new Error(`refused with ${response.statusCode}`), { statusCode: response.statusCode }))
      socket.terminate()
    })
    socket.once('error', reject)
  })
  async function received (count: number, timeoutMs = 2000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs
    while (messages.length < count) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`expected ${count} messages, got ${messages.length}: ${JSON.stringify(messages.map(message => message.slice(0, 40)).slice(0, 10))}`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, left)
        waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
    return messages.slice(0, count)
  }
  return { socket, messages, closed, received }
}

/**
 * Makes a client stop reading its TCP socket, so the server's send buffer fills up. With
 * `deaf`, what already arrived is not parsed either: the client never sees a close frame.
 */
export function stopReading (client: TestClient, { deaf = false } = {}): void {
  const raw = (client.socket as unknown as { _socket: { pause (): void, removeAllListeners (event: string): void } })._socket
  if (deaf) raw.removeAllListeners('data')
  raw.pause()
}

/** Polls a condition until it holds, or fails after `timeoutMs`. */
export async function waitFor (condition: () => boolean, timeoutMs = 2000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

/** Sleeps. */
export function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

export { once }

/** Polls an async condition until it holds, or fails after `timeoutMs`. */
export async function waitForAsync (condition: () => Promise<boolean>, timeoutMs = 2000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

/** Resolves with what `promise` resolves with, or fails after `timeoutMs`. */
export async function within<T> (promise: Promise<T>, timeoutMs: number, what = 'promise'): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs)
  })
  try {
    return await Promise.race([promise, expired])
  } finally {
    clearTimeout(timer)
  }
}

/** Resolves in the next event-loop turn (after pending I/O callbacks). */
export function nextTurn (): Promise<void> {
  return new Promise(resolve => setImmediate(resolve))
}

/**
 * An `assert.throws`/`rejects` validator for an error of this package that names what is wrong:
 * its `code`, the quoted name in its message, and a reason matching `reason`.
 */
export function namedError (code: string, name: string, reason: RegExp) {
  return (error: Error & { code?: string }) => {
    assert.equal(error.code, code)
    assert.ok(error.message.includes(`"${name}"`), error.message)
    assert.match(error.message, reason)
    return true
  }
}
