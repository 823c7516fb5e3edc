import net from 'node:net'
import type { AddressInfo } from 'node:net'
import type { TestContext } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import fastifyWsHub, { Type, defineRoute, type FastifyWsHubOptions } from '../dist/index.js'
import { createClient, type ClientOptions, type HubClient, type WebSocketConstructor } from '../dist/client/index.js'
import { waitFor } from './helpers.js'

/** The chat route the client tests talk to. */
export const chatRoute = defineRoute({
  url: '/chat',
  messages: {
    say: Type.Object({ text: Type.String({ minLength: 1 }) }),
    echo: Type.Unknown(),
    fail: Type.Object({ code: Type.String() }),
    slow: Type.Object({ ms: Type.Integer() }),
    close: Type.Object({ code: Type.Integer() })
  },
  events: {
    said: Type.Object({ text: Type.String() })
  },
  replies: {
    say: Type.Object({ ok: Type.Boolean() })
  },
  handlers: {
    say (client, data) {
      client.hub.broadcastEvent('said', { text: data.text })
      return { ok: true }
    },
    echo: (_client, data) => data,
    fail (_client, data) {
      throw Object.assign(new Error(`failed with ${data.code}`), { expose: true, code: data.code })
    },
    slow: async (_client, data) => await new Promise(resolve => setTimeout(() => resolve(data.ms), data.ms)),
    close (client, data) {
      client.close(data.code, 'go away')
    }
  }
})

/** The WebSocket implementations the tests run with: `ws`, and the global one when Node has it. */
export const implementations: Array<{ name: string, WebSocket: WebSocketConstructor | undefined, skip: string | false }> = [
  { name: 'ws', WebSocket: WebSocket as unknown as WebSocketConstructor, skip: false },
  {
    name: 'globalThis.WebSocket',
    WebSocket: (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket,
    skip: (globalThis as { WebSocket?: unknown }).WebSocket === undefined ? `Node ${process.version} has no global WebSocket` : false
  }
]

/** A hub with the chat route and an echoing untyped route at /raw, on `port` (0: any). */
export async function startHub (t: TestContext, port = 0, options: FastifyWsHubOptions = {}): Promise<{ app: FastifyInstance, port: number, url: string }> {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(fastifyWsHub, { heartbeat: false, ...options })
  app.hub.route(chatRoute)
  app.hub.route({
    url: '/raw',
    // Binary echoed; text echoed with a prefix, or as it is after "raw:"
    onMessage (client, data, isBinary) {
      const text = data.toString()
      client.send(isBinary ? data : text.startsWith('raw:') ? text.slice(4) : `echo:${text}`)
    }
  })
  await app.listen({ port, host: '127.0.0.1' })
  const bound = (app.server.address() as AddressInfo).port
  return { app, port: bound, url: `ws://127.0.0.1:${bound}` }
}

/** A client closed after the test, recording its status changes. */
export function openClient<Route = typeof chatRoute> (t: TestContext, url: string, options: ClientOptions = {}): { client: HubClient<Route>, statuses: string[] } {
  const client = createClient<Route>(url, { WebSocket: WebSocket as unknown as WebSocketConstructor, reconnect: { initialDelay: 10, maxDelay: 50 }, ...options })
  const statuses: string[] = [client.status]
  client.on('status', status => statuses.push(status))
  t.after(() => client.close())
  return { client, statuses }
}

/** Waits for a client's status. */
export function statusIs (client: { status: string }, status: string, timeoutMs = 3000): Promise<void> {
  return waitFor(() => client.status === status, timeoutMs, `status ${status} (is ${client.status})`)
}

/** A TCP proxy to a port, whose links the test cuts or pauses like a lossy network. */
export interface Proxy {
  readonly port: number
  /** Destroys every link, both sides, as a lost network that ends in resets. */
  cut (): void
  /** Stops forwarding without closing anything. */
  pause (): void
  /** Forwards again what waited. */
  resume (): void
  /** Open links. */
  readonly links: number
}

/** Starts a proxy to `target` on loopback, closed after the test. */
export async function startProxy (t: TestContext, target: number): Promise<Proxy> {
  const pairs = new Set<[net.Socket, net.Socket]>()
  let paused = false
  const server = net.createServer(downstream => {
    const upstream = net.connect(target, '127.0.0.1')
    const pair: [net.Socket, net.Socket] = [downstream, upstream]
    pairs.add(pair)
    downstream.pipe(upstream)
    upstream.pipe(downstream)
    if (paused) { downstream.pause(); upstream.pause() }
    const end = (): void => {
      pairs.delete(pair)
      downstream.destroy()
      upstream.destroy()
    }
    downstream.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.after(() => {
    for (const [a, b] of pairs) { a.destroy(); b.destroy() }
    server.close()
  })
  return {
    port: (server.address() as AddressInfo).port,
    cut () {
      for (const [a, b] of pairs) { a.resetAndDestroy(); b.resetAndDestroy() }
    },
    pause () {
      paused = true
      for (const [a, b] of pairs) { a.unpipe(b); b.unpipe(a); a.pause(); b.pause() }
    },
    resume () {
      paused = false
      for (const [a, b] of pairs) { a.pipe(b); b.pipe(a) }
    },
    get links () { return pairs.size }
  }
}
