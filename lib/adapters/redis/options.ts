import type { Redis } from 'ioredis'
import { InvalidOptionError } from '../../errors.js'

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

export const DEFAULT_URL = 'redis://127.0.0.1:6379'
export const DEFAULT_PREFIX = 'fastify-ws-hub'
export const DEFAULT_LEASE_TTL = 10_000

/** @throws {InvalidOptionError} naming the first wrong option */
export function checkOptions (options: RedisAdapterOptions): void {
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
