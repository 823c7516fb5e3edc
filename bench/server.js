// One benchmark server: `node --expose-gc bench/server.js <impl> '<json options>'`, driven over IPC by run.js.
import http from 'node:http'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'
import { Sender, WebSocket, WebSocketServer } from 'ws'
import { nowMicros, serve } from './ipc.js'

const impl = process.argv[2]
const options = JSON.parse(process.argv[3] ?? '{}')
const ROOMS = options.rooms ?? 100
const roomNames = Array.from({ length: ROOMS }, (_, i) => `r${i}`)
let joined = 0
/** Rooms are dealt round-robin in connection order, the same way for every implementation. */
function nextRoom () {
  return roomNames[joined++ % ROOMS]
}

/** Plain-ws rooms: name -> Set of sockets. */
function wsRooms () {
  const rooms = new Map(roomNames.map((name) => [name, new Set()]))
  return {
    rooms,
    add (socket) {
      const members = rooms.get(nextRoom())
      members.add(socket)
      socket.on('close', () => members.delete(socket))
    }
  }
}

async function listen (server) {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return server.address().port
}

/** A bare ws server (no compression) whose clients are dealt into rooms as they connect. */
function plainWsServer () {
  const server = http.createServer()
  const wss = new WebSocketServer({ server, perMessageDeflate: false })
  const { rooms, add } = wsRooms()
  wss.on('connection', (socket) => {
    socket.on('error', () => {})
    add(socket)
  })
  return { server, wss, rooms }
}

/** (a) ws, one `send` per client: the naive loop. */
async function wsLoop () {
  const { server, wss, rooms } = plainWsServer()
  return {
    port: await listen(server),
    path: '/ws',
    count: () => wss.clients.size,
    all (text) {
      for (const socket of wss.clients) socket.send(text)
    },
    room (name, text) {
      for (const socket of rooms.get(name)) socket.send(text)
    },
    ping () {
      for (const socket of wss.clients) socket.ping('ping')
    },
    buffered: () => maxBuffered(wss.clients)
  }
}

/** (b) the REFERENCE: ws, frame built once, every socket corked for the turn and uncorked in one nextTick. */
async function wsCork () {
  const { server, wss, rooms } = plainWsServer()
  const frameOptions = { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false }
  let corked = []
  const uncorkAll = () => {
    const sockets = corked
    corked = []
    for (const raw of sockets) raw.uncork()
  }
  function write (socket, frame) {
    if (socket.readyState !== WebSocket.OPEN) return
    // ws's own stream; writing the frame here is what ws would write, minus the per-socket framing
    const raw = socket._socket
    if (raw.writableCorked === 0) {
      raw.cork()
      if (corked.push(raw) === 1) process.nextTick(uncorkAll)
    }
    raw.write(frame)
  }
  const frameOf = (text) => Buffer.concat(Sender.frame(Buffer.from(text), frameOptions))
  const pingFrame = Buffer.concat(Sender.frame(Buffer.from('ping'), { ...frameOptions, opcode: 9 }))
  return {
    port: await listen(server),
    path: '/ws',
    count: () => wss.clients.size,
    all (text) {
      const frame = frameOf(text)
      for (const socket of wss.clients) write(socket, frame)
    },
    room (name, text) {
      const frame = frameOf(text)
      for (const socket of rooms.get(name)) write(socket, frame)
    },
    ping () {
      for (const socket of wss.clients) write(socket, pingFrame)
    },
    buffered: () => maxBuffered(wss.clients)
  }
}

/** (c) @fastify/websocket with a manual send loop. */
async function fastifyWebsocket () {
  const { default: Fastify } = await import('fastify')
  const { default: websocket } = await import('@fastify/websocket')
  const app = Fastify()
  await app.register(websocket, { options: { perMessageDeflate: false } })
  const clients = new Set()
  const { rooms, add } = wsRooms()
  app.register(async function routes (instance) {
    instance.get('/ws', { websocket: true }, (socket) => {
      socket.on('error', () => {})
      clients.add(socket)
      socket.on('close', () => clients.delete(socket))
      add(socket)
    })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    port: app.server.address().port,
    path: '/ws',
    count: () => clients.size,
    all (text) {
      for (const socket of clients) socket.send(text)
    },
    room (name, text) {
      for (const socket of rooms.get(name)) socket.send(text)
    },
    buffered: () => maxBuffered(clients)
  }
}

/** (d) socket.io over its websocket transport only, `io.emit` of a string. */
async function socketIo () {
  const { Server } = await import('socket.io')
  const server = http.createServer()
  const io = new Server(server, { transports: ['websocket'], serveClient: false, perMessageDeflate: false })
  io.on('connection', (socket) => socket.join(nextRoom()))
  return {
    port: await listen(server),
    path: '/socket.io/?EIO=4&transport=websocket',
    protocol: 'socket.io',
    io,
    count: () => io.engine.clientsCount,
    all (text) {
      io.emit('m', text)
    },
    room (name, text) {
      io.to(name).emit('m', text)
    },
    buffered () {
      let max = 0
      for (const client of Object.values(io.engine.clients)) {
        max = Math.max(max, client.transport.socket?.bufferedAmount ?? 0)
      }
      return max
    }
  }
}

/**
 * fastify-ws-hub as every hub variant of the bench runs it: no heartbeat, handshake or read timeout;
 * with `options.hubDefaults` (the idle scenario) the hub's own defaults for those instead.
 */
async function hubApp (extra = {}) {
  const { default: Fastify } = await import('fastify')
  const { default: fastifyWsHub, Type } = await importBuild()
  const app = Fastify()
  await app.register(fastifyWsHub, {
    ...(options.hubDefaults === true
      ? (options.heartbeat === undefined ? {} : { heartbeat: options.heartbeat })
      : { heartbeat: options.heartbeat ?? false, handshakeMessage: false, readTimeout: 0 }),
    ...extra,
    ...(options.maxBufferedBytes === undefined ? {} : { maxBufferedBytes: options.maxBufferedBytes })
  })
  return { app, Type }
}

/** What run.js asks of any hub variant once its route is registered and it listens. */
async function hubServer (app) {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    port: app.server.address().port,
    path: '/ws',
    count: () => app.hub.onlineCount(),
    buffered () {
      let max = 0
      for (const client of app.hub.clients.values()) max = Math.max(max, client.socket.bufferedAmount)
      return max
    },
    stats: () => app.hub.stats()
  }
}

/** (e) fastify-ws-hub, `app.hub.broadcast` (with `extra` hub options: `hub-metrics`). */
async function hub (extra = {}) {
  const { app } = await hubApp(extra)
  app.hub.route({
    url: '/ws',
    onOpen (client) {
      client.join(nextRoom())
    },
    onMessage () {}
  })
  const roomOptions = new Map(roomNames.map((name) => [name, { room: name }]))
  return {
    ...(await hubServer(app)),
    all (text) {
      app.hub.broadcast(text)
    },
    room (name, text) {
      app.hub.broadcast(text, roomOptions.get(name))
    }
  }
}

// The typed-messages scenario: a chat's `say` message in (checked, handled, answered with a reply
// carrying the message's id) and its `said` event out (serialised once, sent to every client), done
// three ways. Each answers `say` with the sequence number the server gave the message.
const MAX_TEXT = 500
let sequence = 0

/** The check a hand-written handler makes of `say` data: what the typed route's schema says. */
const validSay = (data) => typeof data === 'object' && data !== null && typeof data.text === 'string' &&
  data.text.length >= 1 && data.text.length <= MAX_TEXT

/** (f) fastify-ws-hub, typed route: `say` checked by its TypeBox schema, `said` by `broadcastEvent`. */
async function hubTyped () {
  const { app, Type } = await hubApp()
  app.hub.route({
    url: '/ws',
    messages: {
      say: Type.Object({ text: Type.String({ minLength: 1, maxLength: MAX_TEXT }) }),
      join: Type.Object({ room: Type.String({ pattern: '^[a-z0-9-]{1,32}$' }) })
    },
    events: { said: Type.Object({ from: Type.String(), text: Type.String() }) },
    replies: { say: Type.Object({ seq: Type.Integer() }) },
    handlers: {
      say: () => ({ seq: ++sequence }),
      join (client, data) {
        client.join(data.room)
      }
    }
  })
  return {
    ...(await hubServer(app)),
    event (data) {
      app.hub.broadcastEvent('said', data)
    }
  }
}

/** (g) fastify-ws-hub, untyped route doing by hand what the typed route does: parse, switch, check, reply. */
async function hubJson () {
  const { app } = await hubApp()
  const fail = (client, id, code, message) => client.send(JSON.stringify({ type: 'error', id, error: { code, message } }))
  app.hub.route({
    url: '/ws',
    onMessage (client, text) {
      let message
      try {
        message = JSON.parse(text)
      } catch {
        return fail(client, undefined, 'invalid_json', 'not JSON')
      }
      const { type, data, id } = message ?? {}
      switch (type) {
        case 'say':
          if (!validSay(data)) return fail(client, id, 'invalid_data', 'data/text: a string of 1 to 500 characters')
          if (id !== undefined) client.send(JSON.stringify({ type, id, data: { seq: ++sequence } }))
          return
        case 'join':
          if (typeof data?.room !== 'string' || !/^[a-z0-9-]{1,32}$/.test(data.room)) return fail(client, id, 'invalid_data', 'data/room')
          client.join(data.room)
          return
        default:
          return fail(client, id, 'unknown_type', 'no such message type')
      }
    }
  })
  return {
    ...(await hubServer(app)),
    event (data) {
      app.hub.broadcast(JSON.stringify({ type: 'said', data }))
    }
  }
}

/** (h) socket.io: `say` emitted with an ack, checked by hand and acknowledged; `said` by `io.emit`. */
async function socketIoAck () {
  const server = await socketIo()
  server.io.on('connection', (socket) => {
    socket.on('say', (data, ack) => {
      if (typeof ack !== 'function') return
      ack(validSay(data) ? { seq: ++sequence } : { error: 'invalid_data' })
    })
  })
  return {
    ...server,
    event (data) {
      server.io.emit('said', data)
    }
  }
}

/**
 * The built plugin; a build running meanwhile (rm -rf dist && tsc) gets a few seconds to finish.
 * `hub-base` loads the build in $HUB_BASE_DIST instead (an older commit's, for A/B in one run).
 */
async function importBuild () {
  const url = impl === 'hub-base' ? pathToFileURL(join(process.env.HUB_BASE_DIST ?? '', 'index.js')).href : '../dist/index.js'
  for (let attempt = 1; ; attempt++) {
    try {
      return await import(url)
    } catch (error) {
      if (attempt === 20 || error.code !== 'ERR_MODULE_NOT_FOUND') throw error
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
  }
}

function maxBuffered (sockets) {
  let max = 0
  for (const socket of sockets) max = Math.max(max, socket.bufferedAmount)
  return max
}

const factories = {
  'ws-loop': wsLoop,
  'ws-cork': wsCork,
  'fastify-ws': fastifyWebsocket,
  'socket.io': socketIo,
  hub,
  'hub-base': hub,
  // The histograms observed and rendered by the hub (prom-client is not loaded in the bench).
  'hub-metrics': () => hub({ metrics: { promClient: false } }),
  // The Redis adapter with its defaults (lease, stall watch, subscriptions), on a prefix of its own.
  'hub-redis': async () => {
    const { redisAdapter } = await import('../dist/adapters/redis/index.js')
    return hub({ adapter: redisAdapter({ url: options.redisUrl, prefix: options.redisPrefix }) })
  },
  'hub-typed': hubTyped,
  'hub-json': hubJson,
  'socket.io-ack': socketIoAck
}
const server = await factories[impl]()

/** A text message of `size` bytes that starts with the send time in microseconds. */
function stamped (size) {
  const stamp = String(Math.floor(nowMicros()))
  return stamp + ' ' + 'x'.repeat(Math.max(0, size - stamp.length - 1))
}

function memory () {
  const usage = process.memoryUsage()
  return { rss: usage.rss, heapUsed: usage.heapUsed, external: usage.external, arrayBuffers: usage.arrayBuffers }
}

let pingTimer
serve({
  info: () => ({ port: server.port, path: server.path, protocol: server.protocol ?? 'ws', pid: process.pid }),
  count: () => server.count(),
  cpu: () => ({ ...process.cpuUsage(), wall: nowMicros() }),
  memory () {
    // full collections until the heap stops shrinking (at most 4)
    let last = Infinity
    for (let i = 0; i < 4; i++) {
      globalThis.gc()
      const used = process.memoryUsage().heapUsed
      if (last - used < 64 * 1024) break
      last = used
    }
    return memory()
  },
  memoryNow: memory,
  /** The process's timers and handles by type (`Timeout`, `TCPWrap`, ...): are there timers per client? */
  resources () {
    const counts = {}
    for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1
    return counts
  },
  buffered: () => server.buffered(),
  stats: () => server.stats?.(),
  /** Broadcasts `turns` event-loop turns of `perTurn` messages (to all, to each room, or as events), as fast as it can. */
  burst ({ turns, perTurn, mode, size }) {
    const text = 'x'.repeat(size)
    return new Promise((resolve) => {
      let done = 0
      const turn = () => {
        for (let k = 0; k < perTurn; k++) {
          if (mode === 'rooms') {
            for (const name of roomNames) server.room(name, text)
          } else if (mode === 'event') {
            // a fresh payload each time, as an application builds one per event
            server.event({ from: 'bench', text })
          } else {
            server.all(text)
          }
        }
        if (++done < turns) setImmediate(turn)
        else setImmediate(resolve)
      }
      turn()
    })
  },
  /** Broadcasts time-stamped messages at a fixed rate for a while. */
  paced ({ rate, durationMs, size }) {
    return new Promise((resolve) => {
      const period = 1000 / rate
      const start = performance.now()
      let sent = 0
      const total = Math.round(rate * durationMs / 1000)
      const tick = () => {
        server.all(stamped(size))
        if (++sent >= total) {
          resolve({ sent })
          return
        }
        setTimeout(tick, Math.max(0, start + sent * period - performance.now()))
      }
      tick()
    })
  },
  /** Event-loop delay over a window: histogram plus a 2 ms drift probe (the largest single stall). */
  eventLoopDelay ({ durationMs }) {
    const histogram = monitorEventLoopDelay({ resolution: 1 })
    histogram.enable()
    return new Promise((resolve) => {
      let last = performance.now()
      let worst = 0
      const probe = setInterval(() => {
        const now = performance.now()
        worst = Math.max(worst, now - last - 2)
        last = now
      }, 2)
      setTimeout(() => {
        clearInterval(probe)
        histogram.disable()
        resolve({
          maxMs: histogram.max / 1e6,
          p99Ms: histogram.percentile(99) / 1e6,
          meanMs: histogram.mean / 1e6,
          probeMaxMs: worst
        })
      }, durationMs)
    })
  },
  /** A naive heartbeat for a comparison: ping every client in one loop on a timer. */
  pingLoop ({ intervalMs }) {
    clearInterval(pingTimer)
    if (intervalMs > 0) pingTimer = setInterval(() => server.ping(), intervalMs)
    return true
  }
})
process.send({ ready: true })
