import type { HubAdapter, HubEnvelope, HubNode, Interest, NodeAnswer, NodeAudience, NodeMessage } from '../adapter.ts'
import type { RecoveryStore } from '../../recovery/store.ts'
import type { PresenceStore } from '../../presence/store.ts'
import { decodeEnvelope, encodeEnvelope, plainHeaderOf } from './codec.ts'
import { RedisUnavailableError } from './errors.ts'
import { COUNT_FIELD, Lease, ROOM_FIELD, sumLeases } from './lease.ts'
import { defineHistoryScripts } from './history.ts'
import { ignore, openClusterCommands, openCommands, openSubscriber, ready, shutDown, unlessFailing } from './link.ts'
import { allChannel, channelBase, clientChannel, keyBase, leaseKey, roomChannel } from './names.ts'
import { resolveOptions, type RedisAdapterOptions } from './options.ts'
import { Outbox, RECORDED_SEQUENCE } from './outbox.ts'
import { isAnswer, isQuestion } from './node-codec.ts'
import { NodeMessages } from './node-messages.ts'
import { CONTROL_RELEASE, decodeControl, decodeRecorded, isControl, isRecorded } from './record-codec.ts'
import { deliverable, RedisRecovery } from './recovery.ts'
import { RedisPresence } from './presence.ts'
import { defineSessionScripts } from './sessions.ts'
import { GapReporter, SequenceTracker, STALE } from './sequence.ts'
import { CommandWatch, within } from './stall.ts'
import type { AdapterCounters, RedisAdapterStats } from './stats.ts'
import { Subscriptions } from './subscriptions.ts'
import { PubSub, type AnyRedis } from './transport.ts'

/**
 * How often a node looks for a change of its counts. Writing the lease on change (and at least
 * every ttl/3) keeps other nodes' view of it fresh to this many ms, not to ttl/3.
 */
const SYNC_INTERVAL = 250

/**
 * The Redis adapter: hubs that share a Redis or a Redis Cluster (and a `prefix`) form one cluster.
 *
 * - A node receives only what its clients can get. Broadcasts to everyone go on one channel that
 *   every node subscribes to; a room's broadcasts on the room's channel, which a node subscribes
 *   to while it has a local member (and `unsubscribeDelay` after); `sendTo` on the client's
 *   channel, subscribed by the node that holds it. A broadcast to several rooms is published on
 *   each room's channel; each copy goes to the members of its room who are in none of the rooms
 *   listed before it, so each member gets it once, through the copy of the first of its rooms.
 *   On a Redis Cluster these are sharded channels (SPUBLISH, SSUBSCRIBE), spread over the shards.
 * - Order: per publisher and channel, as Redis keeps it; so per publisher and room, and per
 *   publisher and client for `sendTo`. Envelopes carry a sequence number per channel, so a node
 *   that misses some (it fell behind and Redis cut its subscription) counts and logs the loss,
 *   and a publish time, so that none is delivered later than `maxDeliveryDelay`.
 * - Each node keeps a lease, the hash `<prefix>:node:<nodeId>` (its open clients and room sizes)
 *   with a TTL it refreshes, listed in the set `<prefix>:nodes`. `clusterCount()` sums the live
 *   leases, so a node that dies drops out within `leaseTtl`; a node that closes leaves at once.
 * - While Redis is unreachable or stalled (no answer within `stallTimeout`), local delivery goes
 *   on, publishes are dropped and counted (never replayed late), and the counts reject with
 *   `RedisUnavailableError`. The adapter reconnects and resubscribes by itself.
 * - `recovery` (for hubs with the `recovery` option) keeps per-stream history in Redis Streams on
 *   the shard of each stream's channel, and session records in hashes (see recovery.ts). A
 *   recorded message is appended and published by one script, and delivered at every node, its
 *   publisher included, when Redis sends it back: so every node sees a stream in offset order.
 *
 * @throws {InvalidOptionError} when an option is wrong
 */
export function redisAdapter (options: RedisAdapterOptions = {}): HubAdapter & { readonly recovery: RecoveryStore, readonly presence: PresenceStore } {
  const { prefix, leaseTtl, stallTimeout, maxDeliveryDelay, maxPendingBytes, unsubscribeDelay, client: userClient, cluster, url } = resolveOptions(options)
  const syncEvery = Math.min(SYNC_INTERVAL, Math.floor(leaseTtl / 3))

  const stats: AdapterCounters = { published: 0, received: 0, receivedBytes: 0, dropped: 0, malformed: 0, late: 0, recoveryFailed: 0, presenceFailed: 0 }
  const sequences = new SequenceTracker()
  const recovery = new RedisRecovery(stallTimeout, maxPendingBytes)
  const presence = new RedisPresence(leaseTtl, stallTimeout)
  const watch = new CommandWatch(stallTimeout, onStall, linkBack)
  const nodeMessages = new NodeMessages()
  let node: HubNode | undefined
  let gapReporter: GapReporter | undefined
  /** Known at start, when the connection's database and keyPrefix are. */
  let base = ''
  let everyone = ''
  let plainHeader = ''
  /** This node's own channel: answers to its node messages. */
  let ownChannel = ''
  /** Publishes, lease writes and count queries. The user's client when given. */
  let commands: AnyRedis | undefined
  /** In subscriber mode, so it can do nothing else. Always the adapter's own. */
  let subscriber: AnyRedis | undefined
  let pubsub: PubSub | undefined
  let subscriptions: Subscriptions | undefined
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
    stats.receivedBytes += message.length
    const channel = messageChannel.toString()
    if (isQuestion(message)) {
      nodeMessages.onQuestion(message)
      return
    }
    if (isAnswer(message)) {
      if (channel === ownChannel) nodeMessages.onAnswer(message)
      else stats.malformed++
      return
    }
    // Sent before this node's UNSUBSCRIBE reached Redis: nobody here wants it, and tracking its
    // sequence again would make the room's next subscription start from a stale number.
    if (channel !== everyone && subscriptions?.has(channel) !== true) return
    if (isRecorded(message)) {
      onRecorded(self, channel, message)
      return
    }
    if (isControl(message)) {
      onControl(self, channel, message)
      return
    }
    const decoded = decodeEnvelope(message)
    if (decoded === undefined) {
      stats.malformed++
      self.log.debug({ channel }, 'fastify-ws-hub redis: ignored a message that is not an envelope')
      return
    }
    if (decoded.nodeId === self.nodeId) return
    const lost = sequences.see(decoded.nodeId, channel, decoded.sequence, decoded.publishedAt)
    if (lost > 0) gapReporter?.note(decoded.nodeId, lost)
    // Held up by a stall or by this node falling behind, or overtaken by the publisher's later
    // envelopes: a late message, or one out of order, is worse than none.
    if (lost === STALE || (maxDeliveryDelay > 0 && Date.now() - decoded.publishedAt > maxDeliveryDelay)) {
      stats.late++
      return
    }
    stats.received++
    const envelope = asReceived(decoded.envelope, channel)
    if (envelope === undefined) return
    if (envelope.kind === 'broadcast') envelope.publishedAt = decoded.publishedAt
    self.deliver(envelope)
  }

  /**
   * An envelope as the channel it came on makes it: one room's copy of a broadcast to several gets
   * that room as `via`; undefined for a copy on a channel of none of its rooms.
   */
  function asReceived (envelope: HubEnvelope, channel: string): HubEnvelope | undefined {
    if (envelope.kind !== 'broadcast' || envelope.rooms === undefined || envelope.rooms.length < 2) return envelope
    const via = envelope.rooms.find(room => roomChannel(base, room) === channel)
    return via === undefined ? undefined : { ...envelope, via }
  }

  /**
   * A message of the recovery store's `record`, its own included: a node delivers its recorded
   * publishes when Redis echoes them, not at once, so that it delivers every stream's messages
   * in offset order as every other node does.
   */
  function onRecorded (self: HubNode, channel: string, message: Buffer): void {
    const decoded = decodeRecorded(message)
    if (decoded === undefined) {
      stats.malformed++
      self.log.debug({ channel }, 'fastify-ws-hub redis: ignored a recorded message that is not well formed')
      return
    }
    // Numbered apart from plain envelopes (see RECORDED_SEQUENCE): this node sees its own too.
    const lost = sequences.see(decoded.nodeId, channel + RECORDED_SEQUENCE, decoded.sequence)
    if (lost > 0) gapReporter?.note(decoded.nodeId, lost)
    // No maxDeliveryDelay here: a recorded message dropped as late would be a hole in its stream
    // at this node, and the offsets its clients acknowledge would claim they got it. A late one
    // is in order (the script published it in offset order); it is delivered, however late.
    if (decoded.nodeId !== self.nodeId) stats.received++
    const envelope = asReceived(decoded.envelope, channel)
    if (envelope !== undefined) self.deliver(deliverable(decoded, envelope))
  }

  /** A control message for a client this node holds, from a node that wants its session (this one included). */
  function onControl (self: HubNode, channel: string, message: Buffer): void {
    const control = decodeControl(message)
    // Only on the client's own channel: a control message elsewhere is someone else's garbage.
    if (control.operation !== CONTROL_RELEASE || clientChannel(base, control.clientId) !== channel) {
      stats.malformed++
      return
    }
    self.release(control.clientId)
  }

  /** The channel of a room or a client. */
  function channelOf (kind: Interest, name: string): string {
    return kind === 'room' ? roomChannel(base, name) : clientChannel(base, name)
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
    presence.rewrite()
    tick()
  }

  /** Keeps the lease current and the tracked publishers few. */
  function tick (): void {
    if (closed || commands?.status !== 'ready') return
    lease?.sync(commands)
    presence.sync()
    if (Date.now() - prunedAt >= leaseTtl) prunePublishers(commands)
  }

  /**
   * Forgets the publishers whose lease is gone (closed or dead nodes: ids are not reused), so
   * that a long-lived node's memory does not grow with every node that ever published.
   */
  function prunePublishers (redis: AnyRedis): void {
    prunedAt = Date.now()
    const ids = sequences.publishers()
    if (ids.length === 0 || pruning || watch.stalled) return
    pruning = true
    // One EXISTS per lease, all at once: on a cluster the leases live on several shards.
    watch.track(Promise.all(ids.map(id => redis.exists(leaseKey(prefix, id))))).then((exists) => {
      ids.forEach((id, index) => {
        if (exists[index] === 0) sequences.forget(id)
      })
    }, ignore).finally(() => { pruning = false })
  }

  /** Sums a lease field over the other nodes; any failure is `RedisUnavailableError`, within `stallTimeout`. */
  async function sumOthers (field: string, dropDead: boolean): Promise<number> {
    const self = node
    const redis = commands
    if (self === undefined || redis === undefined || !available()) throw new RedisUnavailableError()
    try {
      return await within(watch.track(sumLeases(redis, self.nodeId, prefix, field, dropDead)), stallTimeout)
    } catch (error) {
      throw new RedisUnavailableError({ cause: error })
    }
  }

  return {
    async start (hubNode: HubNode): Promise<void> {
      node = hubNode
      gapReporter = new GapReporter(hubNode.log)
      plainHeader = plainHeaderOf(hubNode.nodeId)
      commands = userClient ?? (cluster === undefined ? openCommands(url) : openClusterCommands(cluster))
      const keyPrefix = commands.options.keyPrefix ?? ''
      // A cluster has one database; a standalone connection's is in its options (from the URL).
      const db = 'db' in commands.options ? commands.options.db ?? 0 : 0
      base = channelBase(keyPrefix, prefix, db)
      everyone = allChannel(base)
      lease = new Lease(hubNode, prefix, leaseTtl, watch)
      subscriber = openSubscriber(commands)
      pubsub = new PubSub(commands, subscriber, keyPrefix)
      if (pubsub.sharded && /\{.*\}/.test(keyPrefix)) {
        hubNode.log.warn({ keyPrefix }, 'fastify-ws-hub redis: the client\'s keyPrefix holds a hash tag: every channel and key goes to one shard of the cluster')
      }
      outbox = new Outbox(pubsub, watch, stats)
      nodeMessages.attach({ node: hubNode, outbox, base, stats, available })
      ownChannel = nodeMessages.channel
      subscriptions = new Subscriptions(pubsub, stallTimeout, (channel) => {
        sequences.forgetChannel(channel)
        sequences.forgetChannel(channel + RECORDED_SEQUENCE)
      })
      defineHistoryScripts(commands)
      defineSessionScripts(commands)
      recovery.attach({
        node: hubNode,
        pubsub,
        outbox,
        watch,
        stats,
        base,
        keys: keyBase(prefix, db),
        plainHeader,
        available
      })
      presence.attach({ node: hubNode, redis: commands, watch, stats, keys: keyBase(prefix, db), prefix, available })
      commands.on('error', onLinkError)
      commands.on('ready', onCommandsReady)
      subscriber.on('error', onLinkError)
      subscriber.on(pubsub.messageEvent, onMessage)
      const subscribed = Promise.all([pubsub.subscribe(everyone), pubsub.subscribe(ownChannel)]).then(ignore, (error: unknown) => {
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
      const rooms = envelope.kind === 'broadcast' ? envelope.rooms : undefined
      // One envelope per room's channel; dropped ones count the same way.
      const copies = rooms?.length ?? 1
      if (outbox === undefined || !available()) {
        stats.dropped += Math.max(1, copies)
        return false
      }
      if (copies === 0) return false
      const message = encodeEnvelope((node as HubNode).nodeId, plainHeader, envelope)
      // Redis slower than this node's publishes: the backlog, not the process, takes the loss.
      if (watch.pendingBytes + outbox.bytes + message.length * copies > maxPendingBytes) {
        stats.dropped += copies
        return false
      }
      if (envelope.kind === 'send') {
        outbox.push(clientChannel(base, envelope.to), message)
      } else if (rooms === undefined) {
        outbox.push(everyone, message)
      } else {
        // Each copy is its own buffer: its sequence number, per channel, is written into it.
        rooms.forEach((room, index) => { outbox?.push(roomChannel(base, room), index === 0 ? message : Buffer.from(message)) })
      }
      return true
    },

    watch (kind: Interest, name: string): Promise<void> | undefined {
      if (closed || subscriptions === undefined) return undefined
      return subscriptions.watch(channelOf(kind, name))
    },

    unwatch (kind: Interest, name: string): void {
      if (closed) return
      // A room may fill again soon (a page reload); a client id is never used again.
      subscriptions?.unwatch(channelOf(kind, name), kind === 'room' ? unsubscribeDelay : 0)
    },

    askNodes (audience: NodeAudience, message: NodeMessage, timeout: number): Promise<NodeAnswer[]> {
      return nodeMessages.ask(audience, message, timeout)
    },

    notifyNodes (audience: NodeAudience, message: NodeMessage): boolean {
      return nodeMessages.notify(audience, message)
    },

    async clusterCount (): Promise<number> {
      const others = await sumOthers(COUNT_FIELD, true)
      return others + (node as HubNode).onlineCount()
    },

    async clusterRoomSize (room: string): Promise<number> {
      const others = await sumOthers(ROOM_FIELD + room, false)
      return others + (node as HubNode).roomSize(room)
    },

    recovery,

    presence,

    stats (): Readonly<Record<string, number>> {
      const all: RedisAdapterStats = {
        ...stats,
        lost: sequences.lost,
        gaps: sequences.gaps,
        publishers: sequences.size,
        pendingBytes: watch.pendingBytes,
        subscriptions: subscriptions?.size ?? 0
      }
      return all as unknown as Record<string, number>
    },

    async close (): Promise<void> {
      if (closed) return
      // What was published before close still goes, ahead of the lease's deletion.
      outbox?.flush()
      closed = true
      nodeMessages.close()
      clearInterval(timer)
      watch.stop()
      gapReporter?.report()
      subscriptions?.clear()
      const redis = commands
      const sub = subscriber
      if (lease === undefined || redis === undefined || sub === undefined) return
      // Bounded: a Redis that stalls now must not hold the app's close.
      if (available()) await within(Promise.all([presence.close(), lease.remove(redis)]), stallTimeout).catch(ignore)
      sub.off(pubsub?.messageEvent ?? 'messageBuffer', onMessage)
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
