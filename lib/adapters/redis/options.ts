import type { Redis } from 'ioredis'
import { InvalidOptionError } from '../../errors.ts'
import { rejectUnknownKeys } from '../../known-keys.ts'

/** Options of `redisAdapter`. Give `url` or `client`, not both; with neither, Redis on localhost. */
export interface RedisAdapterOptions {
  /**
   * Redis URL: `redis://` or `rediss://` (TLS), with credentials and db (`redis://:pw@host:6379/2`),
   * or the absolute path of a unix socket (`/run/redis.sock`, `?db=2` for a database).
   * Default `redis://127.0.0.1:6379`.
   */
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
}

/** The options with their defaults applied. */
export interface ResolvedRedisOptions {
  url: string
  client: Redis | undefined
  prefix: string
  leaseTtl: number
  stallTimeout: number
  maxDeliveryDelay: number
  maxPendingBytes: number
}

const KNOWN_KEYS: ReadonlyArray<keyof RedisAdapterOptions> = [
  'url', 'client', 'prefix', 'leaseTtl', 'stallTimeout', 'maxDeliveryDelay', 'maxPendingBytes'
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
  if (options.url !== undefined && options.client !== undefined) {
    throw new InvalidOptionError('adapter.url', 'give url or client, not both')
  }
  if (options.url !== undefined) checkUrl(options.url)
  // Duck-typed, not instanceof: the application may hold another copy of ioredis than this package.
  const client = options.client as Partial<Redis> | undefined
  if (client !== undefined && (typeof client.duplicate !== 'function' || typeof client.publish !== 'function')) {
    throw new InvalidOptionError('adapter.client', 'must be an ioredis client')
  }
  if (options.prefix !== undefined && (typeof options.prefix !== 'string' || options.prefix === '')) {
    throw new InvalidOptionError('adapter.prefix', 'must be a non-empty string')
  }
  checkWhole('leaseTtl', options.leaseTtl, 30, 'ms')
  checkWhole('stallTimeout', options.stallTimeout, 10, 'ms')
  checkWhole('maxDeliveryDelay', options.maxDeliveryDelay, 10, 'ms', true)
  checkWhole('maxPendingBytes', options.maxPendingBytes, 1024, 'bytes')
  return {
    url: options.url ?? 'redis://127.0.0.1:6379',
    client: options.client,
    prefix: options.prefix ?? 'fastify-ws-hub',
    leaseTtl: options.leaseTtl ?? 10_000,
    stallTimeout: options.stallTimeout ?? 1000,
    maxDeliveryDelay: options.maxDeliveryDelay ?? 2000,
    maxPendingBytes: options.maxPendingBytes ?? 16 * 1024 * 1024
  }
}
