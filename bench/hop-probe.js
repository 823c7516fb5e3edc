// Where a room node's time goes on the Redis hop, for bench/rooms.js --hops: the hub's envelopes
// (codec.ts: 'w' 'h' 3, flags, u32 header length, ..., JSON header, payload) carry the bench's
// timed payload, whose first word is its send stamp (nowMicros). Seen on the node's ioredis
// connections, that stamp tells how long an envelope took from the broadcast call to the write to
// Redis (the publishing side), and to the subscriber's reading it (publisher, Redis and the
// receiving node's event loop together). Also the node's event-loop delay, for every system.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { nowMicros } from './ipc.js'

const MAGIC = Buffer.from([0x77, 0x68, 3])
const PREAMBLE = 18

/** The send stamp of the payload of the envelope at `at` in `buffer`, and where the envelope's payload starts; undefined if not one. */
function stampAt (buffer, at) {
  if (at + PREAMBLE > buffer.length) return undefined
  const start = at + PREAMBLE + buffer.readUInt32BE(at + 4)
  const end = buffer.indexOf(32, start)
  if (end === -1 || end - start > 20) return undefined
  const stamp = Number(buffer.toString('latin1', start, end))
  return Number.isFinite(stamp) && stamp > 0 ? { stamp, next: end } : undefined
}

function summary (values) {
  values.sort((a, b) => a - b)
  const at = (p) => values.length === 0 ? null : Math.round(values[Math.min(values.length - 1, Math.floor(values.length * p))])
  return { n: values.length, p50: at(0.5), p99: at(0.99), p999: at(0.999), max: at(1) }
}

/** Collects the hop times of one node process. */
export function hopProbe () {
  let written = []
  let received = []
  const loop = monitorEventLoopDelay({ resolution: 1 })
  loop.enable()
  const watched = new WeakSet()
  return {
    /** An ioredis connection became ready: its writes are watched for envelopes. */
    watchWrites (stream) {
      if (stream === undefined || watched.has(stream)) return
      watched.add(stream)
      const write = stream.write
      stream.write = function (chunk, ...rest) {
        if (Buffer.isBuffer(chunk)) {
          const now = nowMicros()
          for (let at = chunk.indexOf(MAGIC); at !== -1; at = chunk.indexOf(MAGIC, at + 1)) {
            const found = stampAt(chunk, at)
            if (found !== undefined) written.push(now - found.stamp)
          }
        }
        return write.call(this, chunk, ...rest)
      }
    },
    /** A pub/sub message the node's subscriber received. */
    received (message) {
      if (!Buffer.isBuffer(message) || message.indexOf(MAGIC) !== 0) return
      const found = stampAt(message, 0)
      if (found !== undefined) received.push(nowMicros() - found.stamp)
    },
    /** Starts a measured window. */
    reset () {
      written = []
      received = []
      loop.reset()
    },
    /** µs from the stamp to the write to Redis and to the subscriber; the event-loop delay in ms. */
    report () {
      return {
        writtenUs: summary(written),
        receivedUs: summary(received),
        loopDelayMs: { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 }
      }
    }
  }
}
