import type { TestContext } from 'node:test'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import fastifyWsHub, { Type, defineRoute, type EventsOf, type FastifyWsHubOptions, type Hub } from '../dist/index.js'
import { createClient, type ClientOptions, type HubClient, type WebSocketConstructor } from '../dist/client/index.js'
import { waitFor } from './helpers.js'

/** A typed route whose clients join rooms on request and receive numbered ticks. */
export const tickRoute = defineRoute({
  url: '/ticks',
  messages: {
    join: Type.Object({ room: Type.String() }),
    leave: Type.Object({ room: Type.String() })
  },
  events: {
    tick: Type.Object({ n: Type.Integer(), from: Type.String(), to: Type.String() })
  },
  handlers: {
    async join (client, data) {
      await client.join(data.room)
      return { id: client.id, rooms: [...client.rooms] }
    },
    leave (client, data) {
      client.leave(data.room)
      return null
    }
  }
})

/** The hub of a recovery app, typed with the tick route's events. */
export function ticksOf (app: FastifyInstance): Hub<EventsOf<typeof tickRoute>> {
  return app.hub as unknown as Hub<EventsOf<typeof tickRoute>>
}

/** What a test records of the opens of the route's clients. */
export interface Opens {
  /** `client.recovered` at each onOpen, in order, with the client's id and rooms then. */
  readonly seen: Array<{ id: string, recovered: boolean, rooms: string[] }>
}

/** A hub with `recovery` and the tick route (and an untyped `/raw` route), listening on loopback. */
export async function startRecoveryHub (t: TestContext, options: FastifyWsHubOptions = {}, onUpgrade?: (token: string | undefined) => Record<string, unknown>): Promise<{ app: FastifyInstance, port: number, url: string, opens: Opens }> {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(fastifyWsHub, { heartbeat: false, recovery: { maxDisconnection: 10_000, maxMessages: 5_000 }, ...options })
  const opens: Opens = { seen: [] }
  app.hub.route({
    ...tickRoute,
    ...(onUpgrade === undefined ? {} : { onUpgrade: (request: { query: unknown }) => onUpgrade((request.query as { user?: string }).user) as never }),
    onOpen (client) {
      opens.seen.push({ id: client.id, recovered: client.recovered, rooms: [...client.rooms] })
    }
  })
  app.hub.route({ url: '/raw', onMessage () {} })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  return { app, port, url: `ws://127.0.0.1:${port}/ticks`, opens }
}

/** The ticks a client received, by `n`, in arrival order. */
export interface TickLog {
  readonly ticks: Array<{ n: number, from: string, to: string }>
  readonly sessions: Array<{ id: string, recovered: boolean }>
}

/** A library client of the tick route that records its ticks and sessions; closed after the test. */
export function tickClient (t: TestContext, url: string, options: ClientOptions = {}): { client: HubClient<typeof tickRoute>, log: TickLog } {
  const client = createClient<typeof tickRoute>(url, { WebSocket: WebSocket as unknown as WebSocketConstructor, reconnect: { initialDelay: 50, maxDelay: 100 }, ...options })
  const log: TickLog = { ticks: [], sessions: [] }
  client.on('tick', tick => log.ticks.push(tick))
  client.on('session', session => log.sessions.push({ ...session }))
  t.after(() => client.close())
  return { client, log }
}

/** Waits until the client has had `count` sessions. */
export async function sessions (log: TickLog, count: number, timeoutMs = 5000): Promise<void> {
  await waitFor(() => log.sessions.length >= count, timeoutMs, `${count} sessions (got ${log.sessions.length})`)
}

/**
 * Checks that the ticks of each publisher (`from`) arrived exactly once each and in the order
 * sent (`n` grows by one per publisher from 1 to `expected[from]`).
 * @returns a description of what is wrong, or '' when nothing is
 */
export function checkTicks (log: TickLog, expected: Readonly<Record<string, number>>): string {
  const next: Record<string, number> = {}
  for (const tick of log.ticks) {
    const want = (next[tick.from] ?? 0) + 1
    if (tick.n !== want) return `${tick.from}: got ${tick.n} where ${want} was due (a ${tick.n < want ? 'duplicate' : 'gap'})`
    next[tick.from] = want
  }
  for (const [from, count] of Object.entries(expected)) {
    if ((next[from] ?? 0) !== count) return `${from}: got ${next[from] ?? 0} of ${count}`
  }
  return ''
}

/** A raw socket's view of the recovery frames: its `$session`, and its ticks with positions. */
export interface RawSession {
  readonly socket: WebSocket
  readonly frames: Array<{ type: string, data: unknown, pos?: [string, string, number] }>
  /** The `$session` frame's data, once it came. */
  session (): Promise<{ id: string, token: string, recovered: boolean }>
  /** Last position per stream, as the client library would send them. */
  positions (): Record<string, [string, number]>
  readonly closed: Promise<number>
}

/**
 * Opens a raw socket to a recovery route; with `resume`, it carries the flag and sends the
 * `$resume` frame first. The hub's handshake message is skipped.
 */
export async function rawSession (t: TestContext, url: string, resume?: { id: string, token: string, positions?: Record<string, [string, number]> }): Promise<RawSession> {
  const socket = new WebSocket(resume === undefined ? url : `${url}${url.includes('?') ? '&' : '?'}_resume=1`)
  t.after(() => socket.terminate())
  const frames: RawSession['frames'] = []
  socket.on('message', (data) => {
    const text = (data as Buffer).toString()
    if (text.startsWith('{"code":2000')) return
    frames.push(JSON.parse(text) as RawSession['frames'][number])
  })
  socket.on('error', () => {})
  const closed = new Promise<number>(resolve => socket.on('close', code => resolve(code)))
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  if (resume !== undefined) socket.send(JSON.stringify({ type: '$resume', data: { positions: {}, ...resume } }))
  return {
    socket,
    frames,
    closed,
    async session () {
      await waitFor(() => frames.some(frame => frame.type === '$session'), 6000, '$session')
      return frames.find(frame => frame.type === '$session')?.data as { id: string, token: string, recovered: boolean }
    },
    positions () {
      const positions: Record<string, [string, number]> = {}
      for (const frame of frames) {
        if (frame.pos !== undefined) positions[frame.pos[0]] = [frame.pos[1], frame.pos[2]]
      }
      return positions
    }
  }
}

/**
 * Checks each publisher's ticks arrived exactly once each (1 to `expected[from]`), and in the
 * order sent within each stream (`to`): the order a Redis Cluster keeps, where streams live on
 * different shards.
 * @returns a description of what is wrong, or '' when nothing is
 */
export function checkTicksPerStream (log: TickLog, expected: Readonly<Record<string, number>>): string {
  const seen = new Map<string, Set<number>>()
  const lastInStream = new Map<string, number>()
  for (const tick of log.ticks) {
    const numbers = seen.get(tick.from) ?? new Set<number>()
    seen.set(tick.from, numbers)
    if (numbers.has(tick.n)) return `${tick.from}: ${tick.n} twice`
    numbers.add(tick.n)
    const stream = `${tick.from} to ${tick.to}`
    if ((lastInStream.get(stream) ?? 0) > tick.n) return `${stream}: ${tick.n} after ${lastInStream.get(stream) ?? 0}`
    lastInStream.set(stream, tick.n)
  }
  for (const [from, count] of Object.entries(expected)) {
    const numbers = seen.get(from) ?? new Set<number>()
    if (numbers.size !== count) return `${from}: got ${numbers.size} of ${count}`
    for (let n = 1; n <= count; n++) if (!numbers.has(n)) return `${from}: ${n} missing`
  }
  return ''
}
