import type { Redis } from 'ioredis'
import type { HubAdapter, HubEnvelope, HubNode } from '../adapter.ts'
import { decodeEnvelope, encodeEnvelope, plainHeaderOf } from './codec.ts'
import { RedisUnavailableError } from './errors.ts'
import { COUNT_FIELD, Lease, ROOM_FIELD, sumLeases } from './lease.ts'
import { ignore, openCommands, openSubscriber, ready, shutDown, unlessFailing } from './link.ts'
import { leaseKey, messagesChannel } from './names.ts'
import { resolveOptions, type RedisAdapterOptions } from './options.ts'
import { Outbox } from './outbox.ts'
import { GapReporter, SequenceTracker } from './sequence.ts'
import { CommandWatch, within } from './stall.ts'
import type { AdapterCounters, RedisAdapterStats } from './stats.ts'

/**
 * How often a node looks for a change of its counts. Writing the lease on change (and at least
 * every ttl/3) keeps other nodes' view of it fresh to this many ms, not to ttl/3.
 */
const SYNC_INTERVAL = 250

/**
 * The Redis adapter: hubs that share a Redis (and a `prefix`) form one cluster.
 *
 * - Every broadcast or `sendTo` is one PUBLISH on `<prefix>:db<n>:messages`; each other node
 *   receives it once, in the publisher's order (one connection, one channel), and ignores its own.
 *   Envelopes carry a sequence number, so a node that misses some (it fell behind and Redis cut
 *   its subscription) counts and logs the loss, and a publish time, so that none is delivered
 *   later than `maxDeliveryDelay`.
 * - Each node keeps a lease, the hash `<prefix>:node:<nodeId>` (its open clients and room sizes)
 *   with a TTL it refreshes, listed in the set `<prefix>:nodes`. `clusterCount()` sums the live
 *   leases, so a node that dies drops out within `leaseTtl`; a node that closes leaves at once.
 * - While Redis is unreachable or stalled (no answer within `stallTimeout`), local delivery goes
 *   on, publishes are dropped and counted (never replayed late), and the counts reject with
 *   `RedisUnavailableError`. The adapter reconnects and resubscribes by itself.
 *
 * Needs a standalone Redis (or Sentinel), not Redis Cluster: the count script reads keys by name.
 * @throws {InvalidOptionError} when an option is wrong
 */
export function redisAdapter (options: RedisAdapterOptions = {}): HubAdapter {
  const { prefix, leaseTtl, stallTimeout, maxDeliveryDelay, maxPendingBytes, client: userClient, url } = resolveOptions(options)
  const syncEvery = Math.min(SYNC_INTERVAL, Math.floor(leaseTtl / 3))

  const stats: AdapterCounters = { published: 0, received: 0, dropped: 0, malformed: 0, late: 0 }
  const sequences = new SequenceTracker()
  const watch = new CommandWatch(stallTimeout, onStall, linkBack)
  let node: HubNode | undefined
  let gapReporter: GapReporter | undefined
  /** Known at start, when the connection's database is. */
  let channel = ''
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
  let prunedAt = 0
  let pruning = false
  let linkUp = true
  let closed = false

  /** Whether a command sent now can be expected to reach Redis and be answered in time. */
  function available (): boolean {
    return commands?.status === 'ready' && !watch.stalled
  }

  function onMessage (messageChannel: Buffer, message: Buffer): void {
    const self = node as HubNode
    const decoded = decodeEnvelope(message)
    if (decoded === undefined) {
      stats.malformed++
      self.log.debug({ channel }, 'fastify-ws-hub redis: ignored a message that is not an envelope')
      return
    }
    if (decoded.nodeId === self.nodeId) return
    const lost = sequences.see(decoded.nodeId, messageChannel.toString(), decoded.sequence)
    if (lost > 0) gapReporter?.note(decoded.nodeId, lost)
    // Held up by a stall or by this node falling behind: a late message is worse than none.
    if (maxDeliveryDelay > 0 && Date.now() - decoded.publishedAt > maxDeliveryDelay) {
      stats.late++
      return
    }
    stats.received++
    self.deliver(decoded.envelope)
  }

  /** One warning per outage, whatever its cause and however many errors ioredis reports. */
  function linkDown (error: Error | undefined, message: string): void {
    if (!linkUp || closed) return
    linkUp = false
    node?.log.warn(error === undefined ? {} : { err: error }, message)
  }

  function linkBack (): void {
    if (linkUp || closed) return
    linkUp = true
    node?.log.info('fastify-ws-hub redis: link back')
  }

  function onLinkError (error: Error): void {
    linkDown(error, 'fastify-ws-hub redis: link down; cross-node messages are dropped until it returns')
  }

  function onStall (): void {
    linkDown(undefined, `fastify-ws-hub redis: Redis has not answered for ${stallTimeout} ms (stallTimeout); link treated as down: cross-node messages are dropped until it answers`)
  }

  function onCommandsReady (): void {
    // A fresh connection: whatever stalled the old one is behind us.
    watch.answered()
    linkBack()
    // Redis may have restarted empty: write the lease again now rather than at the next refresh.
    lease?.rewrite()
    tick()
  }

  /** Keeps the lease current and the tracked publishers few. */
  function tick (): void {
    if (closed || commands?.status !== 'ready') return
    lease?.sync(commands)
    if (Date.now() - prunedAt >= leaseTtl) prunePublishers(commands)
  }

  /**
   * Forgets the publishers whose lease is gone (closed or dead nodes: ids are not reused), so
   * that a long-lived node's memory does not grow with every node that ever published.
   */
  function prunePublishers (redis: Redis): void {
    prunedAt = Date.now()
    const ids = sequences.publishers()
    if (ids.length === 0 || pruning || watch.stalled) return
    pruning = true
    const pipeline = redis.pipeline()
    for (const id of ids) pipeline.exists(leaseKey(prefix, id))
    watch.track(pipeline.exec()).then((results) => {
      ids.forEach((id, index) => {
        const [error, exists] = results?.[index] ?? [null, 1]
        if (error === null && exists === 0) sequences.forget(id)
      })
    }, ignore).finally(() => { pruning = false })
  }

  /** Sums a lease field over the other nodes; any failure is `RedisUnavailableError`, within `stallTimeout`. */
  async function sumOthers (field: string, dropDead: boolean): Promise<number> {
    const self = node
    const redis = commands
    if (self === undefined || redis === undefined || !available()) throw new RedisUnavailableError()
    try {
      return await within(watch.track(sumLeases(redis, self.nodeId, prefix, keyPrefix, field, dropDead)), stallTimeout)
    } catch (error) {
      throw new RedisUnavailableError({ cause: error })
    }
  }

  return {
    async start (hubNode: HubNode): Promise<void> {
      node = hubNode
      gapReporter = new GapReporter(hubNode.log)
      plainHeader = plainHeaderOf(hubNode.nodeId)
      commands = userClient ?? openCommands(url)
      keyPrefix = commands.options.keyPrefix as string // ioredis defaults it to ''
      channel = messagesChannel(keyPrefix, prefix, commands.options.db ?? 0)
      lease = new Lease(hubNode, prefix, leaseTtl, watch)
      outbox = new Outbox(commands, watch, stats)
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
      prunedAt = Date.now()
      tick()
      timer = setInterval(tick, syncEvery).unref()
      watch.start()
    },

    publish (envelope: HubEnvelope): boolean {
      if (outbox === undefined || !available()) {
        stats.dropped++
        return false
      }
      const message = encodeEnvelope((node as HubNode).nodeId, plainHeader, envelope)
      // Redis slower than this node's publishes: the backlog, not the process, takes the loss.
      if (watch.pendingBytes + outbox.bytes + message.length > maxPendingBytes) {
        stats.dropped++
        return false
      }
      outbox.push(channel, message)
      return true
    },

    async clusterCount (): Promise<number> {
      const others = await sumOthers(COUNT_FIELD, true)
      return others + (node as HubNode).onlineCount()
    },

    async clusterRoomSize (room: string): Promise<number> {
      const others = await sumOthers(ROOM_FIELD + room, false)
      return others + (node as HubNode).roomSize(room)
    },

    stats (): Readonly<Record<string, number>> {
      const all: RedisAdapterStats = { ...stats, lost: sequences.lost, gaps: sequences.gaps, publishers: sequences.size, pendingBytes: watch.pendingBytes }
      return all as unknown as Record<string, number>
    },

    async close (): Promise<void> {
      if (closed) return
      // What was published before close still goes, ahead of the lease's deletion.
      outbox?.flush()
      closed = true
      clearInterval(timer)
      watch.stop()
      gapReporter?.report()
      const redis = commands
      const sub = subscriber
      if (lease === undefined || redis === undefined || sub === undefined) return
      // Bounded: a Redis that stalls now must not hold the app's close.
      if (available()) await within(lease.remove(redis), stallTimeout).catch(ignore)
      sub.off('messageBuffer', onMessage)
      await shutDown(sub, stallTimeout)
      if (userClient === undefined) {
        // Our own connection keeps its error listener (silent once closed) so late errors go nowhere.
        await shutDown(redis, stallTimeout)
      } else {
        redis.off('error', onLinkError)
        redis.off('ready', onCommandsReady)
      }
    }
  }
}
