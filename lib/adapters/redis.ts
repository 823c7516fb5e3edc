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

/** Encodes an envelope for the channel. */
function encodeEnvelope (nodeId: string, envelope: HubEnvelope): Buffer {
  const header = JSON.stringify(envelope.kind === 'send'
    ? [nodeId, envelope.to]
    : [nodeId, envelope.rooms ?? null, envelope.except ?? null])
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

/** Short, capped backoff: an outage costs seconds of cross-node traffic, not minutes. */
function reconnectDelay (attempt: number): number {
  return Math.min(attempt * 100, MAX_RECONNECT_DELAY)
}

/** Resolves once the connection is ready, or at its first error (the caller then goes on without it). */
function settled (redis: Redis): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve()
  return new Promise(resolve => {
    const done = (): void => {
      redis.off('ready', done)
      redis.off('error', done)
      resolve()
    }
    redis.on('ready', done)
    redis.on('error', done)
  })
}

/** Quits a connection politely when it is up, at once when it is not (a QUIT would wait for Redis). */
async function shutDown (redis: Redis): Promise<void> {
  if (redis.status === 'ready') {
    try {
      await redis.quit()
      return
    } catch {}
  }
  redis.disconnect()
}

function checkOptions (options: RedisAdapterOptions): void {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('adapter', 'redisAdapter options must be an object')
  if (options.url !== undefined && options.client !== undefined) {
    throw new InvalidOptionError('adapter.url', 'give url or client, not both')
  }
  if (options.url !== undefined && typeof options.url !== 'string') throw new InvalidOptionError('adapter.url', 'must be a string')
  if (options.client !== undefined && !(options.client instanceof Redis)) {
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
  const channel = `${prefix}:messages`
  const membersKey = `${prefix}:nodes`
  const leasePrefix = `${prefix}:node:`
  const userClient = options.client

  const stats: RedisAdapterStats = { published: 0, received: 0, dropped: 0, malformed: 0 }
  let node: HubNode | undefined
  /** Publishes, lease writes and count queries. The user's client when given. */
  let commands: Redis | undefined
  /** In subscriber mode, so it can do nothing else. Always the adapter's own. */
  let subscriber: Redis | undefined
  let timer: NodeJS.Timeout | undefined
  let linkUp = true
  let closed = false
  /** What the lease last written says; a different value means it must be written again. */
  let written = ''
  let writtenAt = 0
  let writing = false

  const onPublished = (): void => { stats.published++ }
  // Rejected before it left (link down) or in flight when the link broke: either way not delivered by us.
  const onPublishFailed = (): void => { stats.dropped++ }

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
    written = ''
    syncLease()
  }

  /** Writes the lease when its content changed or it is due for a refresh; one write at a time. */
  function syncLease (): void {
    const self = node
    const redis = commands
    if (self === undefined || redis === undefined || writing || closed || redis.status !== 'ready') return
    const fields: Record<string, number> = { [COUNT_FIELD]: self.onlineCount() }
    let content = String(fields[COUNT_FIELD])
    for (const [room, members] of self.rooms) {
      fields[ROOM_FIELD + room] = members.size
      content += `\n${room}\n${members.size}`
    }
    const now = Date.now()
    if (content === written && now - writtenAt < refreshEvery) return
    const key = leasePrefix + self.nodeId
    writing = true
    redis.multi()
      .del(key)
      .hset(key, fields)
      .pexpire(key, leaseTtl)
      .sadd(membersKey, self.nodeId)
      .exec()
      .then(() => {
        written = content
        writtenAt = now
      }, (error: unknown) => {
        self.log.debug({ err: error }, 'fastify-ws-hub redis: lease not written')
      })
      .finally(() => { writing = false })
  }

  async function sumLeases (field: string, dropDead: boolean): Promise<number> {
    const self = node
    const redis = commands
    if (self === undefined || redis === undefined || redis.status !== 'ready') throw new RedisUnavailableError()
    const others = await redis.eval(SUM_LEASES, 1, membersKey, self.nodeId, leasePrefix, field, dropDead ? '1' : '0')
    return Number(others)
  }

  return {
    async start (hubNode: HubNode): Promise<void> {
      node = hubNode
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
      await Promise.all([settled(commands), Promise.race([subscribed, settled(subscriber)])])
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
      redis.publish(channel, encodeEnvelope((node as HubNode).nodeId, envelope)).then(onPublished, onPublishFailed)
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
