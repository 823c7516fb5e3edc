// The client fleet: raw `net` sockets that do the HTTP upgrade and parse server frames minimally,
// so that the clients' own CPU stays small. Driven over IPC by run.js.
import net from 'node:net'
import { nowMicros, serve } from './ipc.js'
import { percentile } from './measure.js'

const REQUEST_TAIL = 'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'
const LATENCY_CAPACITY = 4_000_000

let sockets = []
let received = 0
let recording = false
let latencies = new Float64Array(0)
let recorded = 0
let pongs = 0
/** Counted messages that came compressed (RSV1), and the bytes of every counted frame's payload. */
let compressed = 0
let wireBytes = 0
let waiter

/** A client frame (masked, with a zero mask so the payload needs no XOR). */
function clientFrame (opcode, payload) {
  const header = payload.length < 126 ? 2 : 4
  const frame = Buffer.alloc(header + 4 + payload.length)
  frame[0] = 0x80 | opcode
  if (header === 2) {
    frame[1] = 0x80 | payload.length
  } else {
    frame[1] = 0x80 | 126
    frame.writeUInt16BE(payload.length, 2)
  }
  payload.copy(frame, header + 4)
  return frame
}
const SIO_CONNECT = clientFrame(1, Buffer.from('40'))
const SIO_PONG = clientFrame(1, Buffer.from('3'))

/** The send time a message starts with: the first run of digits in its first 24 bytes. */
function stampOf (buffer, start, end) {
  let i = start
  const limit = Math.min(end, start + 24)
  while (i < limit && (buffer[i] < 48 || buffer[i] > 57)) i++
  let value = 0
  while (i < end) {
    const digit = buffer[i] - 48
    if (digit < 0 || digit > 9) break
    value = value * 10 + digit
    i++
  }
  return value
}

function checkWaiter () {
  if (waiter !== undefined && received >= waiter.target) {
    const done = waiter.resolve
    waiter = undefined
    done()
  }
}

/** Parses every complete frame in the connection's buffer; keeps the incomplete tail. */
function onFrames (conn, chunk) {
  const buffer = conn.rest === null ? chunk : Buffer.concat([conn.rest, chunk])
  const length = buffer.length
  const now = recording ? nowMicros() : 0
  let offset = 0
  let counted = 0
  for (;;) {
    if (length - offset < 2) break
    const first = buffer[offset]
    let size = buffer[offset + 1] & 0x7f
    let header = 2
    if (size === 126) {
      if (length - offset < 4) break
      size = buffer.readUInt16BE(offset + 2)
      header = 4
    } else if (size === 127) {
      if (length - offset < 10) break
      size = buffer.readUInt32BE(offset + 6)
      header = 10
    }
    const start = offset + header
    const end = start + size
    if (end > length) break
    const opcode = first & 0x0f
    if ((opcode === 1 || opcode === 2) && conn.handshake > 0) {
      // socket.io with permessage-deflate (context takeover compresses even these): its open
      // packet, answered with a connect, then the namespace's connect packet, counted unread.
      if (--conn.handshake === 1) conn.socket.write(SIO_CONNECT)
      else conn.ready()
    } else if (opcode === 1 || opcode === 2) {
      wireBytes += size
      if ((first & 0x40) !== 0) {
        // Compressed, so unread: every message counts (no latency stamp, no socket.io packet type).
        compressed++
        counted++
      } else if (!conn.socketIo) {
        counted++
        if (recording && recorded < LATENCY_CAPACITY) latencies[recorded++] = now - stampOf(buffer, start, end)
      } else if (buffer[start] === 0x34 && buffer[start + 1] === 0x32) { // "42": an event
        counted++
        if (recording && recorded < LATENCY_CAPACITY) latencies[recorded++] = now - stampOf(buffer, start + 2, end)
      } else if (buffer[start] === 0x34 && buffer[start + 1] === 0x33) { // "43": an ack, the reply to a request
        counted++
      } else if (buffer[start] === 0x30) { // "0": engine.io open -> connect to the main namespace
        conn.socket.write(SIO_CONNECT)
      } else if (buffer[start] === 0x34 && buffer[start + 1] === 0x30) { // "40": namespace connected
        conn.ready()
      } else if (buffer[start] === 0x32 && size === 1) { // "2": engine.io ping
        pongs++
        conn.socket.write(SIO_PONG)
      }
    } else if (opcode === 9) {
      pongs++
      conn.socket.write(clientFrame(0xA, buffer.subarray(start, end)))
    }
    offset = end
  }
  conn.rest = offset < length ? buffer.subarray(offset) : null
  if (counted > 0) {
    received += counted
    checkWaiter()
  }
}

/**
 * Opens one client: TCP connect, HTTP upgrade, then frames. Resolves true once it is connected.
 * `extensions`: a `Sec-WebSocket-Extensions` offer (`permessage-deflate; client_max_window_bits`,
 * as browsers send); the upgrade then fails unless the server accepts it. Frames are counted, not
 * inflated.
 */
function connectOne ({ port, path, protocol, stalled, extensions }) {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    const socketIo = protocol === 'socket.io'
    const conn = { socket, rest: null, socketIo, handshake: socketIo && extensions !== undefined ? 2 : 0, ready: null }
    let head = ''
    let settled = false
    const settle = (ok) => {
      if (settled) return
      settled = true
      if (ok) sockets.push(socket)
      else socket.destroy()
      resolve(ok)
    }
    conn.ready = () => settle(true)
    socket.setNoDelay(true)
    socket.on('error', () => settle(false))
    socket.on('close', () => settle(false))
    const offer = extensions === undefined ? '' : `Sec-WebSocket-Extensions: ${extensions}\r\n`
    socket.once('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${offer}${REQUEST_TAIL}`))
    const onHead = (chunk) => {
      head += chunk.toString('latin1')
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) return
      if (!head.startsWith('HTTP/1.1 101') || (extensions !== undefined && !/^Sec-WebSocket-Extensions:/im.test(head.slice(0, end)))) {
        settle(false)
        return
      }
      socket.off('data', onHead)
      if (stalled) {
        // never read again: the kernel buffers fill, then the server's
        socket.pause()
        settle(true)
        return
      }
      socket.on('data', (data) => onFrames(conn, data))
      const tail = Buffer.from(head.slice(end + 4), 'latin1')
      if (tail.length > 0) onFrames(conn, tail)
      if (!conn.socketIo) settle(true)
    }
    socket.on('data', onHead)
  })
}

/** Resolves false once `target` messages in all have arrived, true if `timeoutMs` passed first. */
function untilReceived (target, timeoutMs) {
  if (received >= target) return false
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      waiter = undefined
      resolve(true)
    }, timeoutMs)
    waiter = {
      target,
      resolve: () => {
        clearTimeout(timer)
        resolve(false)
      }
    }
  })
}

serve({
  /** Opens `n` clients, `concurrency` upgrades in flight at a time; reports how long it took. */
  async connect ({ n, concurrency = 256, ...target }) {
    const start = performance.now()
    let next = 0
    let ok = 0
    const worker = async () => {
      while (next < n) {
        next++
        if (await connectOne(target)) ok++
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker))
    return { ok, failed: n - ok, ms: performance.now() - start, open: sockets.length }
  },
  received: () => received,
  /** Counted messages that came compressed, and their frames' payload bytes in all. */
  wire: () => ({ compressed, wireBytes }),
  /** Resolves once `target` messages in all have arrived (or after timeoutMs). */
  async waitFor ({ target, timeoutMs }) {
    const timedOut = await untilReceived(target, timeoutMs)
    return { received, timedOut }
  },
  latencyStart () {
    if (latencies.length === 0) latencies = new Float64Array(LATENCY_CAPACITY)
    recorded = 0
    recording = true
    return true
  },
  /** Stops recording; percentiles of the fan-out latency in milliseconds. */
  latencyStop () {
    recording = false
    const sorted = latencies.slice(0, recorded).sort()
    const ms = (value) => value === null ? null : value / 1000
    return { n: recorded, p50: ms(percentile(sorted, 0.5)), p99: ms(percentile(sorted, 0.99)), max: ms(sorted[recorded - 1] ?? null) }
  },
  /**
   * `rounds` rounds of one request per client: every client writes `text` as one frame, and the next
   * round starts once a reply (or any counted frame) per client has arrived.
   */
  async requests ({ text, rounds, timeoutMs }) {
    const frame = clientFrame(1, Buffer.from(text))
    const base = received
    for (let round = 1; round <= rounds; round++) {
      for (const socket of sockets) socket.write(frame)
      if (await untilReceived(base + round * sockets.length, timeoutMs)) return { replies: received - base, timedOut: true }
    }
    return { replies: received - base, timedOut: false }
  },
  pongs: () => pongs,
  closeAll () {
    for (const socket of sockets) socket.destroy()
    const closed = sockets.length
    sockets = []
    return closed
  },
  cpu: () => process.cpuUsage()
})
process.send({ ready: true })
