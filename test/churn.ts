import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { prng } from './raw-client.js'

/** What a churn run did. */
export interface ChurnResult {
  /** Connect, join, message, disconnect cycles completed. */
  cycles: number
  /** Room broadcasts received back. */
  echoes: number
  /** Cycles that failed (refused, no handshake, no echo in time). */
  failures: number
  /** First failures, for the report. */
  errors: string[]
}

/** Options of a churn run. */
export interface ChurnOptions {
  /** ws:// URL of the churn route. */
  url: string
  /** Clients alive at once. */
  concurrency: number
  durationMs: number
  /** Number of distinct rooms clients join. */
  rooms?: number
  seed?: number
}

/** The route a churn run talks to: a text message is a room name to join, then broadcast to. */
export function churnRoute (app: FastifyInstance, url = '/churn'): void {
  app.hub.route({
    url,
    onMessage (client, data) {
      if (typeof data !== 'string') return
      client.join(data)
      client.hub.broadcast(data, { room: data })
    }
  })
}

/** Opens a client and resolves once the hub's handshake message has arrived. */
export function openClient (url: string, timeoutMs = 5000): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false })
    const timer = setTimeout(() => {
      socket.terminate()
      reject(new Error('no handshake message in time'))
    }, timeoutMs)
    socket.once('message', () => {
      clearTimeout(timer)
      resolve(socket)
    })
    socket.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })
}

/** Resolves once the socket has closed (at once if it already has). */
export function closed (socket: WebSocket): Promise<void> {
  if (socket.readyState === WebSocket.CLOSED) return Promise.resolve()
  return new Promise(resolve => socket.once('close', () => resolve()))
}

async function cycle (url: string, room: string, ending: number, result: ChurnResult, closing: Set<Promise<void>>): Promise<void> {
  const socket = await openClient(url)
  socket.on('error', () => {})
  // A cycle may leave before its socket has closed (a close not waited for): the run waits for it.
  const done: Promise<void> = closed(socket).then(() => { closing.delete(done) })
  closing.add(done)
  try {
    await exchange(socket, room, ending, result)
  } catch (error) {
    socket.terminate()
    throw error
  }
}

async function exchange (socket: WebSocket, room: string, ending: number, result: ChurnResult): Promise<void> {
  const echoed = new Promise<boolean>(resolve => {
    const timer = setTimeout(resolve, 5000, false)
    socket.on('message', (data) => {
      if (data.toString() === room) {
        clearTimeout(timer)
        resolve(true)
      }
    })
  })
  socket.send(room)
  if (!await echoed) throw new Error(`no echo from ${room}`)
  result.echoes++
  // Three ways to leave: a close handshake, a dropped TCP connection, a close not waited for.
  if (ending === 0) {
    socket.close(1000)
    await closed(socket)
  } else if (ending === 1) {
    socket.terminate()
  } else {
    socket.close(4000, 'bye')
  }
}

/**
 * Runs `concurrency` clients in loops for `durationMs`: each connects, joins a room, gets a room
 * broadcast back and disconnects, then starts again. Every loop ends at the deadline; the run
 * resolves once every socket it opened has closed (so none holds ws's close timer any more).
 */
export async function churn (options: ChurnOptions): Promise<ChurnResult> {
  const { url, concurrency, durationMs, rooms = 20, seed = 42 } = options
  const random = prng(seed)
  const result: ChurnResult = { cycles: 0, echoes: 0, failures: 0, errors: [] }
  const deadline = Date.now() + durationMs
  const closing = new Set<Promise<void>>()
  async function worker (): Promise<void> {
    while (Date.now() < deadline) {
      const room = `room-${Math.floor(random() * rooms)}`
      try {
        await cycle(url, room, Math.floor(random() * 3), result, closing)
        result.cycles++
      } catch (error) {
        result.failures++
        if (result.errors.length < 5) result.errors.push((error as Error).message)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  await Promise.all(closing)
  return result
}
