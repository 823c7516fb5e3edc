import type { Redis } from 'ioredis'
import type { HubAdapter, HubEnvelope, HubNode } from '../adapter.js'
import { decodeEnvelope, encodeEnvelope, plainHeaderOf } from './codec.js'
import { COUNT_FIELD, Lease, ROOM_FIELD, sumLeases } from './lease.js'
import { ignore, openCommands, openSubscriber, ready, shutDown, unlessFailing } from './link.js'
import { checkOptions, DEFAULT_LEASE_TTL, DEFAULT_PREFIX, DEFAULT_URL, type RedisAdapterOptions } from './options.js'
import { Outbox } from './outbox.js'
import type { RedisAdapterStats } from './stats.js'

/**
 * How often a node looks for a change of its counts. Writing the lease on change (and at least
 * every ttl/3) keeps other nodes' view of it fresh to this many ms, not to ttl/3.
 */
const SYNC_INTERVAL = 250

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
  const syncEvery = Math.min(SYNC_INTERVAL, Math.floor(leaseTtl / 3))
  // ioredis adds a client's keyPrefix to keys but not to channels: add it here, so that a keyPrefix
  // makes a cluster of its own for messages as it does for leases.
  const channel = `${options.client?.options.keyPrefix ?? ''}${prefix}:messages`
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
  let lease: Lease | undefined
  let outbox: Outbox | undefined
  let timer: NodeJS.Timeout | undefined
  let linkUp = true
  let closed = false

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
    lease?.rewrite()
    syncLease()
  }

  function syncLease (): void {
    if (closed || commands?.status !== 'ready') return
    lease?.sync(commands)
  }

  return {
    async start (hubNode: HubNode): Promise<void> {
      node = hubNode
      plainHeader = plainHeaderOf(hubNode.nodeId)
      commands = userClient ?? openCommands(options.url ?? DEFAULT_URL)
      keyPrefix = commands.options.keyPrefix as string // ioredis defaults it to ''
      lease = new Lease(hubNode, prefix, leaseTtl)
      outbox = new Outbox(commands, channel, stats)
      subscriber = openSubscriber(commands)
      commands.on('error', onLinkError)
      commands.on('ready', onCommandsReady)
      subscriber.on('error', onLinkError)
      subscriber.on('messageBuffer', onMessage)
      const subscribed = subscriber.subscribe(channel).then(ignore, (error: unknown) => {
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
      if (outbox === undefined || commands?.status !== 'ready') {
        stats.dropped++
        return false
      }
      outbox.push(encodeEnvelope((node as HubNode).nodeId, plainHeader, envelope))
      return true
    },

    async clusterCount (): Promise<number> {
      const others = await sumLeases(commands, node, prefix, keyPrefix, COUNT_FIELD, true)
      return others + (node as HubNode).onlineCount()
    },

    async clusterRoomSize (room: string): Promise<number> {
      const others = await sumLeases(commands, node, prefix, keyPrefix, ROOM_FIELD + room, false)
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
      outbox?.flush()
      const redis = commands
      const sub = subscriber
      if (lease === undefined || redis === undefined || sub === undefined) return
      if (redis.status === 'ready') await lease.remove(redis)
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
