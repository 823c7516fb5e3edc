import type { Cluster, ClusterNode, Redis } from 'ioredis'
import { InvalidOptionError } from '../../errors.ts'
import { rejectUnknownKeys } from '../../known-keys.ts'

/**
 * Options of `redisAdapter`. Give one of `url`, `cluster` and `client`; with none, Redis on
 * localhost.
 */
export interface RedisAdapterOptions {
  /**
   * Redis URL: `redis://` or `rediss://` (TLS), with credentials and db (`redis://:pw@host:6379/2`),
   * or the absolute path of a unix socket (`/run/redis.sock`, `?db=2` for a database).
   * Default `redis://127.0.0.1:6379`.
   */
  url?: string
  /**
   * A Redis Cluster (Redis 7 or later): some of its nodes, as `{ host, port }`, `'host:port'` or a
   * port. Channels then use sharded pub/sub (SPUBLISH, SSUBSCRIBE): each room's traffic lives on
   * the shard of its slot and reaches only the nodes with a member in it. For a cluster with TLS
   * or a password, pass your own ioredis `Cluster` as `client`.
   */
  cluster?: ClusterNode[]
  /**
   * An ioredis client of your own: a `Redis` (for TLS, Sentinel, custom retries...) or a `Cluster`
   * (sharded pub/sub, as with `cluster`). The adapter publishes and keeps its lease through it,
   * duplicates it for its subscriptions, and never quits it: closing it stays your job.
   */
  client?: Redis | Cluster
  /** Prefix of every key and channel the adapter uses; hubs that share it form one cluster. Default `fastify-ws-hub`. */
  prefix?: string
  /**
   * Ms a node's lease lives without being refreshed (it is refreshed every `leaseTtl / 3`). A node
   * that dies leaves `clusterCount()` within this time. Default 10000.
   */
  leaseTtl?: number
  /**
   * Ms Redis may leave a command of the adapter unanswered before the link counts as down (a
   * stalled Redis or a network split without a reset): publishes are then dropped and counted, and
   * the counts reject with `RedisUnavailableError`, until Redis answers again. A count never waits
   * longer than this. Default 1000.
   */
  stallTimeout?: number
  /**
   * Ms an envelope may take from its publisher's `publish` to this node. Older ones (published
   * before a stall, or held up in a node that fell behind) are dropped and counted in
   * `adapter.late`, never delivered late. Measured with the two nodes' clocks: keep them in sync
   * (NTP). `0` turns the check off. Default 2000.
   */
  maxDeliveryDelay?: number
  /**
   * Bytes of envelopes this node may have handed to Redis and not yet seen acknowledged. Above it
   * publishes are dropped and counted: a slow or stalled Redis costs a bounded amount of memory.
   * Default 16777216 (16 MiB); the process holds up to about five times this (ioredis keeps each
   * command and its written form until Redis answers).
   */
  maxPendingBytes?: number
  /**
   * Ms a node stays subscribed to a room's channel after its last local member left, so that a room
   * that empties and fills again (a page reload) costs no unsubscribe and resubscribe. `0`:
   * unsubscribe at once. Default 5000.
   */
  unsubscribeDelay?: number
}

/** The options with their defaults applied. */
export interface ResolvedRedisOptions {
  url: string
  cluster: ClusterNode[] | undefined
  client: Redis | Cluster | undefined
  prefix: string
  leaseTtl: number
  stallTimeout: number
  maxDeliveryDelay: number
  maxPendingBytes: number
  unsubscribeDelay: number
}

const KNOWN_KEYS: ReadonlyArray<keyof RedisAdapterOptions> = [
  'url', 'cluster', 'client', 'prefix', 'leaseTtl', 'stallTimeout', 'maxDeliveryDelay', 'maxPendingBytes', 'unsubscribeDelay'
]

/** What ioredis connects to: redis: and rediss: URLs, and unix socket paths. */
const URL_PROTOCOLS = new Set(['redis:', 'rediss:'])

function checkUrl (url: unknown): void {
  if (typeof url !== 'string') throw new InvalidOptionError('adapter.url', 'must be a string')
  // ioredis reads an absolute path as a unix socket.
  if (url.startsWith('/') && !url.startsWith('//')) return
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new InvalidOptionError('adapter.url', `${JSON.stringify(url)} is not a URL; give redis://host:port/db, rediss://... or a unix socket path`)
  }
  if (!URL_PROTOCOLS.has(parsed.protocol)) {
    throw new InvalidOptionError('adapter.url', `the scheme must be redis: or rediss:, not ${parsed.protocol}`)
  }
}

/** Checks the startup nodes of a cluster: a non-empty list of `{ host, port }`, `'host:port'` or ports. */
function checkClusterNodes (nodes: unknown): void {
  const valid = (node: unknown): boolean =>
    (typeof node === 'number' && Number.isInteger(node) && node > 0 && node < 65536) ||
    (typeof node === 'string' && node !== '') ||
    (typeof node === 'object' && node !== null)
  if (!Array.isArray(nodes) || nodes.length === 0 || !nodes.every(valid)) {
    throw new InvalidOptionError('adapter.cluster', 'must be a non-empty array of cluster nodes: { host, port }, \'host:port\' or a port')
  }
}

/** Checks a whole number of at least `min`; `zero` lets 0 through too (an "off" value). */
function checkWhole (name: keyof RedisAdapterOptions, value: unknown, min: number, unit: string, zero = false): void {
  if (value === undefined || (zero && value === 0)) return
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new InvalidOptionError(`adapter.${name}`, `must be a whole number of ${unit}, at least ${min}${zero ? ' (or 0: off)' : ''}`)
  }
}

/**
 * Checks the options and applies the defaults.
 * @throws {InvalidOptionError} naming the first wrong option
 */
export function resolveOptions (options: RedisAdapterOptions): ResolvedRedisOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('adapter', 'redisAdapter options must be an object')
  rejectUnknownKeys('adapter', options, KNOWN_KEYS)
  const given = (['url', 'cluster', 'client'] as const).filter(name => options[name] !== undefined)
  if (given.length > 1) {
    throw new InvalidOptionError(`adapter.${given[0] as string}`, `give one of url, cluster and client, not ${given.join(' and ')}`)
  }
  if (options.url !== undefined) checkUrl(options.url)
  if (options.cluster !== undefined) checkClusterNodes(options.cluster)
  // Duck-typed, not instanceof: the application may hold another copy of ioredis than this package.
  const client = options.client as Partial<Redis> | undefined
  if (client !== undefined && (typeof client.duplicate !== 'function' || typeof client.publish !== 'function')) {
    throw new InvalidOptionError('adapter.client', 'must be an ioredis client (Redis or Cluster)')
  }
  if (options.prefix !== undefined && (typeof options.prefix !== 'string' || options.prefix === '' || /[{}]/.test(options.prefix))) {
    // Braces would make the prefix the hash tag of every channel: one shard for all of a cluster's traffic.
    throw new InvalidOptionError('adapter.prefix', 'must be a non-empty string without { or }')
  }
  checkWhole('leaseTtl', options.leaseTtl, 30, 'ms')
  checkWhole('stallTimeout', options.stallTimeout, 10, 'ms')
  checkWhole('maxDeliveryDelay', options.maxDeliveryDelay, 10, 'ms', true)
  checkWhole('maxPendingBytes', options.maxPendingBytes, 1024, 'bytes')
  checkWhole('unsubscribeDelay', options.unsubscribeDelay, 1, 'ms', true)
  return {
    url: options.url ?? 'redis://127.0.0.1:6379',
    cluster: options.cluster,
    client: options.client,
    prefix: options.prefix ?? 'fastify-ws-hub',
    leaseTtl: options.leaseTtl ?? 10_000,
    stallTimeout: options.stallTimeout ?? 1000,
    maxDeliveryDelay: options.maxDeliveryDelay ?? 2000,
    maxPendingBytes: options.maxPendingBytes ?? 16 * 1024 * 1024,
    unsubscribeDelay: options.unsubscribeDelay ?? 5000
  }
}
