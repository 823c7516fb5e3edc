// A node of the room benches (rooms.js, cluster-throughput.js), in its own process: a server whose
// clients each join the room named in their query string, the IPC calls the driver checks it with,
// and room broadcasts sent at a paced rate to rooms drawn at random.
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'
import { nowMicros } from './ipc.js'

/** Bytes of every timed broadcast (a short chat line). */
export const MESSAGE_SIZE = 100

/**
 * Room i's name, as the clients' query strings and the nodes' broadcasts give it.
 * @param {number} i
 */
export const roomName = (i) => `r${i}`

const padding = 'x'.repeat(MESSAGE_SIZE)

/**
 * A timed broadcast: `<stamp µs> <phase> <origin node> <room> xxx...`, MESSAGE_SIZE bytes. The
 * stamp is this process's nowMicros(); the driver reads it back on delivery for the latency, and
 * the phase to leave out what an earlier phase left in flight.
 * @param {number} phase
 * @param {number} origin the sending node's index
 * @param {number} room
 */
export function roomMessage (phase, origin, room) {
  const head = `${Math.round(nowMicros())} ${phase} ${origin} ${room} `
  return head + padding.slice(head.length)
}

/**
 * A small seeded generator: every run (and every system compared) draws the same rooms in the
 * same order.
 * @param {number} seed
 * @returns {() => number} uniform in [0, 1)
 */
export function mulberry32 (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * @typedef {object} RoomSystem a server of a room node, whatever its library
 * @property {number} port
 * @property {(room: string, text: string) => void} send broadcasts to a room (of the whole cluster)
 * @property {() => number} clients clients connected to this node
 * @property {(room: string) => number} roomSize members of a room on this node
 * @property {() => Record<string, number>} counters the system's own counters
 * @property {() => Promise<void>} close
 */

/**
 * The hub from a dist/ build, on its Redis adapter, listening on a free loopback port; a client
 * joins the room of its `room` query parameter. No heartbeat, handshake message or read timeout:
 * only the broadcasts are measured.
 * @param {string} dist the build's directory (this worktree's dist/, or a baseline's)
 * @param {object} adapterOptions redisAdapter's options: `{ url, prefix }` or `{ cluster, prefix }`
 * @returns {Promise<RoomSystem>} with the adapter's counters (`adapter.*` of hub.stats())
 */
export async function listenRoomHub (dist, adapterOptions) {
  const { default: Fastify } = await import('fastify')
  const { default: fastifyWsHub } = await import(pathToFileURL(join(dist, 'index.js')).href)
  const { redisAdapter } = await import(pathToFileURL(join(dist, 'adapters', 'redis', 'index.js')).href)
  const app = Fastify()
  await app.register(fastifyWsHub, {
    heartbeat: false,
    handshakeMessage: false,
    readTimeout: 0,
    adapter: redisAdapter(adapterOptions)
  })
  app.hub.route({
    url: '/ws',
    onOpen (client) { client.join(String(client.request.query.room)) }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    port: app.server.address().port,
    send (room, text) { app.hub.broadcast(text, { room }) },
    clients: () => app.hub.onlineCount(),
    roomSize: (room) => app.hub.roomSize(room),
    counters () {
      const stats = app.hub.stats()
      return Object.fromEntries(Object.entries(stats).filter(([key]) => key.startsWith('adapter.')))
    },
    close: () => app.close()
  }
}

/**
 * The IPC calls (for `serve`) that the driver makes of every room node before a run: `clock` (for
 * the clock offsets), `count` (clients, and members of given rooms: is every client registered?)
 * and `probe` (a readiness probe `p <round> <room>` to each given room: are the cross-node
 * subscriptions in place?).
 * @param {RoomSystem} system
 */
export function roomNodeCalls (system) {
  return {
    clock: () => nowMicros(),
    count ({ rooms }) {
      let members = 0
      for (const room of rooms) members += system.roomSize(roomName(room))
      return { clients: system.clients(), members }
    },
    probe ({ rooms, round }) {
      for (const room of rooms) system.send(roomName(room), `p ${round} ${room}`)
      return rooms.length
    }
  }
}

/**
 * `rate` sends per second for `ms`, each to a room drawn at random (seeded) among `targets`:
 * `send(room)` does one, `flush()` (if given) ends each turn's batch. Every turn sends all that is
 * due by then, so a late timer catches up instead of lowering the rate offered.
 * @param {object} options
 * @param {number} options.rate
 * @param {number} options.ms
 * @param {number} options.seed
 * @param {number[]} options.targets the rooms to draw from
 * @param {number} options.rooms how many rooms there are in all (for the counts per room)
 * @param {(room: number) => void} options.send
 * @param {() => void} [options.flush]
 * @returns {Promise<{ sent: number, perRoom: number[], ms: number }>} what was sent, per room too, and how long it took
 */
export function paced ({ rate, ms, seed, targets, rooms, send, flush }) {
  const random = mulberry32(seed)
  const total = Math.round(rate * ms / 1000)
  const interval = 1000 / rate
  const perRoom = new Array(rooms).fill(0)
  let sent = 0
  const started = performance.now()
  return new Promise((resolve) => {
    const tick = () => {
      const elapsed = performance.now() - started
      while (sent < total && sent * interval <= elapsed) {
        const room = targets[Math.floor(random() * targets.length)]
        send(room)
        perRoom[room]++
        sent++
      }
      flush?.()
      if (sent >= total) resolve({ sent, perRoom, ms: performance.now() - started })
      else setTimeout(tick, Math.max(0, sent * interval - (performance.now() - started)))
    }
    tick()
  })
}
