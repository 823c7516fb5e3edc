import createError from '@fastify/error'
import { Redis, type RedisOptions } from 'ioredis'
import { InvalidOptionError } from '../errors.js'
import type { HubAdapter, HubEnvelope, HubNode } from './adapter.js'

/** Options of `redisAdapter`. Give `url` or `client`, not both; with neither, Redis on localhost. */
export interface RedisAdapterOptions {
  /** Redis URL (`redis://`, `rediss://`, with credentials and db). Default `redis://127.0.0.1:6379`. */
  url?: string
  /**
   * An ioredis client of your own (for TLS, Sentinel, custom retries...). The adapter publishes and
   * keeps its lease through it, duplicates it for its subscription, and never quits it: closing
   * it stays your job.
   */
  client?: Redis
  /** Prefix of every key and channel the adapter uses; hubs that share it form one cluster. Default `fastify-ws-hub`. */
  prefix?: string
  /**
   * Ms a node's lease lives without being refreshed (it is refreshed every `leaseTtl / 3`). A node
   * that dies leaves `clusterCount()` within this time. Default 10000.
   */
  leaseTtl?: number
}

/** Counters of the Redis adapter, in `hub.stats()` as `adapter.<name>`. */
export interface RedisAdapterStats {
  /** Envelopes Redis accepted (one PUBLISH each). */
  published: number
  /** Envelopes from other nodes delivered here. */
  received: number
  /** Envelopes not sent because Redis was unreachable (never queued, never replayed). */
  dropped: number
  /** Messages on the channel that are not envelopes of this adapter; ignored. */
  malformed: number
}

/** `clusterCount()` or `clusterRoomSize()` was called while Redis is unreachable. */
export const RedisUnavailableError = createError<'FST_WS_HUB_REDIS_UNAVAILABLE', 503, []>(
  'FST_WS_HUB_REDIS_UNAVAILABLE', 'Redis is unreachable: cluster-wide counts are unknown until it returns', 503)

const DEFAULT_URL = 'redis://127.0.0.1:6379'
const DEFAULT_PREFIX = 'fastify-ws-hub'
const DEFAULT_LEASE_TTL = 10_000
/**
 * How often a node looks for a change of its counts. Writing the lease on change (and at least
 * every ttl/3) keeps other nodes' view of it fresh to this many ms, not to ttl/3.
 */
const SYNC_INTERVAL = 250
/** Reconnect backoff cap: once Redis is back, a node is back within about this long. */
const MAX_RECONNECT_DELAY = 1000

// Wire format of an envelope: 'w' 'h' version flags | u32 header length | JSON header | payload.
// The JSON header is tiny (node id, rooms, except or to); the payload travels as raw bytes.
const MAGIC_0 = 0x77
const MAGIC_1 = 0x68
const VERSION = 1
const FLAG_BINARY = 1
const FLAG_DIRECT = 2
const PREAMBLE = 8

/** Lease hash fields: the node's open clients, and one field per room. */
const COUNT_FIELD = 'c'
const ROOM_FIELD = 'r:'

/**
 * Sums one field of every other live node's lease. Run as one script: one round trip and no race
 * between reading the members and dropping the dead ones (whose lease key has expired).
 */
const SUM_LEASES = `
local total = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[1] then
    local value = redis.call('HGET', ARGV[2] .. id, ARGV[3])
    if value then
      total = total + tonumber(value)
    elseif ARGV[4] == '1' and redis.call('EXISTS', ARGV[2] .. id) == 0 then
      redis.call('SREM', KEYS[1], id)
    end
  end
end
return total`

/**
 * Encodes an envelope for the channel. `plainHeader` is this node's header for a broadcast to
 * everyone, the common case, built once rather than per message.
 */
function encodeEnvelope (nodeId: string, plainHeader: string, envelope: HubEnvelope): Buffer {
  const header = envelope.kind === 'send'
    ? JSON.stringify([nodeId, envelope.to])
    : envelope.rooms === undefined && envelope.except === undefined
      ? plainHeader
      : JSON.stringify([nodeId, envelope.rooms ?? null, envelope.except ?? null])
  const headerLength = Buffer.byteLength(header)
  const payload = envelope.payload
  const message = Buffer.allocUnsafe(PREAMBLE + headerLength + payload.length)
  message[0] = MAGIC_0
  message[1] = MAGIC_1
  message[2] = VERSION
  message[3] = (envelope.binary ? FLAG_BINARY : 0) | (envelope.kind === 'send' ? FLAG_DIRECT : 0)
  message.writeUInt32BE(headerLength, 4)
  message.write(header, PREAMBLE)
  payload.copy(message, PREAMBLE + headerLength)
  return message
}

function isStringArray (value: unknown): value is string[] {
  return Array.isArray(value) && value.every(item => typeof item === 'string')
}

/** Decodes a message of the channel; undefined for anything that is not a well-formed envelope. */
function decodeEnvelope (message: Buffer): { nodeId: string, envelope: HubEnvelope } | undefined {
  if (message.length < PREAMBLE || message[0] !== MAGIC_0 || message[1] !== MAGIC_1 || message[2] !== VERSION) return undefined
  const flags = message[3] as number
  const headerEnd = PREAMBLE + message.readUInt32BE(4)
  if (flags > (FLAG_BINARY | FLAG_DIRECT) || headerEnd > message.length) return undefined
  let header: unknown
  try {
    header = JSON.parse(message.toString('utf8', PREAMBLE, headerEnd))
  } catch {
    return undefined
  }
  if (!Array.isArray(header) || typeof header[0] !== 'string') return undefined
  const nodeId = header[0]
  // A view, not a copy: redis-parser never reuses the memory of a reply it handed out.
  const payload = message.subarray(headerEnd)
  const binary = (flags & FLAG_BINARY) !== 0
  if ((flags & FLAG_DIRECT) !== 0) {
    if (header.length !== 2 || typeof header[1] !== 'string') return undefined
    return { nodeId, envelope: { kind: 'send', to: header[1], payload, binary } }
  }
  const [, rooms, except] = header as unknown[]
  if (header.length !== 3 || (rooms !== null && !isStringArray(rooms)) || (except !== null && typeof except !== 'string')) {
    return undefined
  }
  return {
    nodeId,
    envelope: { kind: 'broadcast', payload, binary, rooms: rooms ?? undefined, except: except ?? undefined }
  }
}

/** Errors that are reported elsewhere (the connection's 'error' event) or that do not matter any more. */
function ignore (): void {}

/** Short, capped backoff: an outage costs seconds of cross-node traffic, not minutes. */
function reconnectDelay (attempt: number): number {
  return Math.min(attempt * 100, MAX_RECONNECT_DELAY)
}

/** Resolves once the connection is ready. */
function ready (redis: Redis): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve()
  // A lazyConnect client of the user's would otherwise wait for a first command that never comes.
  if (redis.status === 'wait') redis.connect().catch(ignore)
  return new Promise(resolve => redis.once('ready', resolve))
}

/** Resolves when `done` settles or at the connection's first error, whichever comes first. */
function unlessFailing (redis: Redis, done: Promise<unknown>): Promise<void> {
  return new Promise(resolve => {
    const finish = (): void => {
      redis.off('error', finish)
      resolve()
    }
    redis.on('error', finish)
    done.then(finish, finish)
  })
}

/** Quits a connection politely when it is up, at once when it is not (a QUIT would wait for Redis). */
async function shutDown (redis: Redis): Promise<void> {
  if (redis.status === 'ready') await redis.quit().catch(ignore)
  // After a QUIT this only makes sure no reconnection is pending.
  redis.disconnect()
}

function checkOptions (options: RedisAdapterOptions): void {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('adapter', 'redisAdapter options must be an object')
  if (options.url !== undefined && options.client !== undefined) {
    throw new InvalidOptionError('adapter.url', 'give url or client, not both')
  }
  if (options.url !== undefined && typeof options.url !== 'string') throw new InvalidOptionError('adapter.url', 'must be a string')
  // Duck-typed, not instanceof: the application may hold another copy of ioredis than this package.
  const client = options.client as Partial<Redis> | undefined
  if (client !== undefined && (typeof client.duplicate !== 'function' || typeof client.publish !== 'function')) {
    throw new InvalidOptionError('adapter.client', 'must be an ioredis client')
  }
  if (options.prefix !== undefined && (typeof options.prefix !== 'string' || options.prefix === '')) {
    throw new InvalidOptionError('adapter.prefix', 'must be a non-empty string')
  }
  const ttl = options.leaseTtl
  if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 30)) {
    throw new InvalidOptionError('adapter.leaseTtl', 'must be a whole number of ms, at least 30')
  }
}

/**
 * The Redis adapter: hubs that share a Redis (and a `prefix`) form one cluster.
 *
 * - Every broadcast or `sendTo` is one PUBLISH on `<prefix>:messages`; each other node receives it
 *   once, in the publisher's order (one connection, one channel), and ignores its own.
 * - Each node keeps a lease, the hash `<prefix>:node:<nodeId>` (its open clients and room sizes)
 *   with a TTL it refreshes, listed in the set `<prefix>:nodes`. `clusterCount()` sums the live
 *   leases, so a node that dies drops out within `leaseTtl`; a node that closes leaves at once.
 * - While Redis is unreachable, local delivery goes on, publishes are dropped and counted (never
 *   replayed late), and the counts reject with `RedisUnavailableError`. The adapter reconnects
 *   and resubscribes by itself.
 *
 * Needs a standalone Redis (or Sentinel), not Redis Cluster: the count script reads keys by name.
 * @throws {InvalidOptionError} when an option is wrong
 */
export function redisAdapter (options: RedisAdapterOptions = {}): HubAdapter {
  checkOptions(options)
  const prefix = options.prefix ?? DEFAULT_PREFIX
  const leaseTtl = options.leaseTtl ?? DEFAULT_LEASE_TTL
  const refreshEvery = Math.floor(leaseTtl / 3)
  const syncEvery = Math.min(SYNC_INTERVAL, refreshEvery)
  // ioredis adds a client's keyPrefix to keys but not to channels: add it here, so that a keyPrefix
  // makes a cluster of its own for messages as it does for leases.
  const channel = `${options.client?.options.keyPrefix ?? ''}${prefix}:messages`
  const membersKey = `${prefix}:nodes`
  const leasePrefix = `${prefix}:node:`
  const userClient = options.client

  const stats: RedisAdapterStats = { published: 0, received: 0, dropped: 0, malformed: 0 }
  let node: HubNode | undefined
  let plainHeader = ''
  /** The user's client may carry an ioredis keyPrefix: added to keys, so the script must add it too. */
  let keyPrefix = ''
  /** Publishes, lease writes and count queries. The user's client when given. */
  let commands: Redis | undefined
  /** In subscriber mode, so it can do nothing else. Always the adapter's own. */
  let subscriber: Redis | undefined
  let timer: NodeJS.Timeout | undefined
  let linkUp = true
  let closed = false
  /** The room sizes that the lease in Redis holds (or is being written with), as of `leaseVersion`. */
  let leaseRooms = new Map<string, number>()
  let leaseVersion = -1
  /** The next write must replace the whole lease: at start, after a reconnect, a failed write or a lapse. */
  let rewrite = true
  let refreshedAt = 0
  let writing = false

  /** Envelopes published during this turn of the event loop, sent together at its end. */
  let outbox: Buffer[] = []
  let flushing: NodeJS.Immediate | undefined

  const onPublished = (): void => { stats.published++ }
  // Rejected before it left (link down) or in flight when the link broke: either way not delivered by us.
  const onPublishFailed = (): void => { stats.dropped++ }
  const onBatchSent = (results: Array<[Error | null, unknown]> | null): void => {
    for (const [error] of results as Array<[Error | null, unknown]>) {
      if (error === null) stats.published++
      else stats.dropped++
    }
  }

  /**
   * Sends the turn's envelopes: one PUBLISH each still, but written as one pipeline, which costs
   * a fraction of separate commands (about 9 µs per envelope instead of 40 in a burst). Order is
   * kept: every command goes down the one connection in publish order.
   */
  function flushOutbox (): void {
    flushing = undefined
    const messages = outbox
    outbox = []
    const redis = commands as Redis
    if (redis.status !== 'ready') {
      stats.dropped += messages.length
      return
    }
    if (messages.length === 1) {
      redis.publish(channel, messages[0] as Buffer).then(onPublished, onPublishFailed)
      return
    }
    const pipeline = redis.pipeline()
    for (const message of messages) pipeline.publish(channel, message)
    pipeline.exec().then(onBatchSent, () => { stats.dropped += messages.length })
  }

  function onMessage (_channel: Buffer, message: Buffer): void {
    const self = node as HubNode
    const decoded = decodeEnvelope(message)
    if (decoded === undefined) {
      stats.malformed++
      self.log.debug({ channel }, 'fastify-ws-hub redis: ignored a message that is not an envelope')
      return
    }
    if (decoded.nodeId === self.nodeId) return
    stats.received++
    self.deliver(decoded.envelope)
  }

  function onLinkError (error: Error): void {
    // ioredis reports every failed reconnect; one warning per outage is enough.
    if (!linkUp || closed) return
    linkUp = false
    node?.log.warn({ err: error }, 'fastify-ws-hub redis: link down; cross-node messages are dropped until it returns')
  }

  function onCommandsReady (): void {
    if (!linkUp) {
      linkUp = true
      node?.log.info('fastify-ws-hub redis: link back')
    }
    // Redis may have restarted empty: write the lease again now rather than at the next refresh.
    rewrite = true
    syncLease()
  }

  /**
   * Keeps the lease up to date, one write at a time: nothing when nothing changed and no refresh is
   * due; otherwise one MULTI that writes only the count and the rooms whose size changed (a node
   * with a room per user must not rewrite them all at every join), and renews the TTL.
   */
  function syncLease (): void {
    const self = node
    const redis = commands
    if (self === undefined || redis === undefined || writing || closed || redis.status !== 'ready') return
    const version = self.membershipVersion
    const now = Date.now()
    const changed = rewrite || version !== leaseVersion
    if (!changed && now - refreshedAt < refreshEvery) return
    const key = leasePrefix + self.nodeId
    const whole = rewrite
    // First, so that its result tells whether the lease was still there (0: it lapsed).
    const transaction = redis.multi().pexpire(key, leaseTtl)
    if (changed) {
      // leaseRooms is brought up to date now, before the write succeeds: a failed write sets
      // `rewrite`, and the next one starts from scratch anyway.
      if (whole) {
        leaseRooms = new Map()
        transaction.del(key)
      }
      const fields: Array<string | number> = [COUNT_FIELD, self.onlineCount()]
      for (const [room, members] of self.rooms) {
        const size = members.size
        if (leaseRooms.get(room) !== size) {
          leaseRooms.set(room, size)
          fields.push(ROOM_FIELD + room, size)
        }
      }
      // leaseRooms now holds every live room: anything more is a room that emptied.
      if (leaseRooms.size > self.rooms.size) {
        const gone: string[] = []
        for (const room of leaseRooms.keys()) {
          if (self.rooms.has(room)) continue
          leaseRooms.delete(room)
          gone.push(ROOM_FIELD + room)
        }
        transaction.hdel(key, ...gone)
      }
      transaction.hset(key, ...fields).pexpire(key, leaseTtl)
    }
    writing = true
    transaction.sadd(membersKey, self.nodeId).exec().then((results) => {
      if (results === null || results.some(([error]) => error !== null)) throw new Error('lease transaction failed')
      leaseVersion = version
      refreshedAt = now
      // A lapsed lease (expired, or Redis flushed) got only this write's changes: make it whole.
      rewrite = !whole && results[0]?.[1] === 0
    }).catch((error: unknown) => {
      rewrite = true
      self.log.debug({ err: error }, 'fastify-ws-hub redis: lease not written')
    }).finally(() => { writing = false })
  }

  async function sumLeases (field: string, dropDead: boolean): Promise<number> {
    const self = node
    const redis = commands
    if (self === undefined || redis === undefined || redis.status !== 'ready') throw new RedisUnavailableError()
    const others = await redis.eval(SUM_LEASES, 1, membersKey, self.nodeId, keyPrefix + leasePrefix, field, dropDead ? '1' : '0')
    return Number(others)
  }

  return {
    async start (hubNode: HubNode): Promise<void> {
      node = hubNode
      plainHeader = JSON.stringify([hubNode.nodeId, null, null])
      if (userClient !== undefined) {
        commands = userClient
      } else {
        // No offline queue and no retries: a publish made while Redis is away fails at once (and is
        // counted) instead of waiting in a queue to be delivered late.
        commands = new Redis(options.url ?? DEFAULT_URL, {
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          autoResendUnfulfilledCommands: false,
          retryStrategy: reconnectDelay
        })
      }
      keyPrefix = commands.options.keyPrefix as string // ioredis defaults it to ''
      // The subscription, unlike publishes, must wait for Redis however long it takes.
      subscriber = commands.duplicate({
        enableOfflineQueue: true,
        maxRetriesPerRequest: null,
        autoResubscribe: true,
        lazyConnect: false
      } satisfies Partial<RedisOptions>)
      commands.on('error', onLinkError)
      commands.on('ready', onCommandsReady)
      subscriber.on('error', onLinkError)
      subscriber.on('messageBuffer', onMessage)
      const subscribed = subscriber.subscribe(channel).then(() => {}, (error: unknown) => {
        if (!closed) hubNode.log.warn({ err: error }, 'fastify-ws-hub redis: subscription failed')
      })
      // Redis down at start is not fatal: the hub serves its own clients and joins when Redis comes.
      // Ready means subscribed: a broadcast right after app.ready() must already reach this node.
      await Promise.all([unlessFailing(commands, ready(commands)), unlessFailing(subscriber, subscribed)])
      if (subscriber.status !== 'ready' || commands.status !== 'ready') {
        hubNode.log.warn('fastify-ws-hub redis: Redis unreachable at start; this node joins the cluster when it returns')
      }
      syncLease()
      timer = setInterval(syncLease, syncEvery).unref()
    },

    publish (envelope: HubEnvelope): boolean {
      const redis = commands
      if (redis === undefined || redis.status !== 'ready') {
        stats.dropped++
        return false
      }
      outbox.push(encodeEnvelope((node as HubNode).nodeId, plainHeader, envelope))
      flushing ??= setImmediate(flushOutbox)
      return true
    },

    async clusterCount (): Promise<number> {
      const others = await sumLeases(COUNT_FIELD, true)
      return others + (node as HubNode).onlineCount()
    },

    async clusterRoomSize (room: string): Promise<number> {
      const others = await sumLeases(ROOM_FIELD + room, false)
      return others + (node as HubNode).roomSize(room)
    },

    stats (): Readonly<Record<string, number>> {
      return { ...stats }
    },

    async close (): Promise<void> {
      if (closed) return
      closed = true
      clearInterval(timer)
      // What was published before close still goes, ahead of the lease's deletion.
      if (flushing !== undefined) {
        clearImmediate(flushing)
        flushOutbox()
      }
      const self = node
      const redis = commands
      const sub = subscriber
      if (self === undefined || redis === undefined || sub === undefined) return
      if (redis.status === 'ready') {
        // Leave the count at once rather than when the lease expires.
        const key = leasePrefix + self.nodeId
        await redis.multi().del(key).srem(membersKey, self.nodeId).exec().catch((error: unknown) => {
          self.log.debug({ err: error }, 'fastify-ws-hub redis: lease not deleted; it expires by itself')
        })
      }
      sub.off('messageBuffer', onMessage)
      await shutDown(sub)
      if (userClient === undefined) {
        // Our own connection keeps its error listener (silent once closed) so late errors go nowhere.
        await shutDown(redis)
      } else {
        redis.off('error', onLinkError)
        redis.off('ready', onCommandsReady)
      }
    }
  }
}
