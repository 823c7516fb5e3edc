import { randomBytes } from 'node:crypto'
import type { HubEnvelope, HubNode } from '../adapter.ts'
import {
  ALL_STREAM, clientStream, roomStream,
  type HistoryRead, type RecordedEnvelope, type RecoveryLimits, type RecoveryStore, type SessionRecord, type StreamPosition
} from '../../recovery/store.ts'
import { RedisUnavailableError } from './errors.ts'
import { MODE_META, MODE_SESSION, readHistory, topOf, type HistorySource, type RecordCall } from './history.ts'
import {
  allChannel, allHistoryKey, allMetaKey, clientChannel, clientHistoryKey, roomChannel, roomHistoryKey, roomMetaKey, sessionKey
} from './names.ts'
import type { Outbox } from './outbox.ts'
import { CONTROL_RELEASE, encodeBody, encodeControl, type DecodedRecorded } from './record-codec.ts'
import * as sessions from './sessions.ts'
import { within, type CommandWatch } from './stall.ts'
import type { AdapterCounters } from './stats.ts'
import type { AnyRedis, PubSub } from './transport.ts'

/** Bounds used until `configure` is called (a hub with recovery on always calls it before `start`). */
const DEFAULT_LIMITS: RecoveryLimits = { maxDisconnection: 120_000, maxMessages: 100 }
/** Ms between two asks of `release`: the holder needs a ping's round trip to let a dead socket go. */
const RELEASE_RETRY = 75

/** What the store needs of a started adapter. */
export interface RecoveryLink {
  readonly node: HubNode
  readonly pubsub: PubSub
  readonly outbox: Outbox
  readonly watch: CommandWatch
  readonly stats: AdapterCounters
  /** The start of channel names (keyPrefix included), see `channelBase`. */
  readonly base: string
  /** The start of recovery key names (keyPrefix excluded: ioredis adds it), see `keyBase`. */
  readonly keys: string
  /** `plainHeaderOf(nodeId)`. */
  readonly plainHeader: string
  /** Whether a command sent now can be expected to reach Redis and be answered in time. */
  available (): boolean
}

/** Where a stream lives in Redis: its keys (and its room, for a room's), and its channel. */
interface StreamPlace extends HistorySource {
  readonly channel: string
  readonly mode: typeof MODE_META | typeof MODE_SESSION
}

/** The stream of a delivered message: its audience (for one room's copy of a broadcast to several, `via`). */
function streamOfEnvelope (envelope: HubEnvelope): string {
  if (envelope.kind === 'send') return clientStream(envelope.to)
  const room = envelope.via ?? envelope.rooms?.[0]
  return room === undefined ? ALL_STREAM : roomStream(room)
}

/**
 * Makes the envelope a node delivers of a recorded message: with its position and origin when it
 * was recorded, as it was otherwise (a send to a client without a session).
 */
export function deliverable (decoded: DecodedRecorded, envelope: HubEnvelope): HubEnvelope {
  if (decoded.position === undefined) return envelope
  const recorded: RecordedEnvelope = {
    ...envelope,
    position: { stream: streamOfEnvelope(envelope), epoch: decoded.position.epoch, offset: decoded.position.offset },
    origin: { node: decoded.nodeId, ordinal: decoded.ordinal, publishedAt: decoded.publishedAt }
  }
  return recorded
}

/**
 * Rejects a name that is not a stream's: a bug of the caller, not Redis being away.
 * @throws {TypeError}
 */
function checkStream (stream: string): void {
  if (stream !== ALL_STREAM && !stream.startsWith('r:') && !stream.startsWith('c:')) {
    throw new TypeError(`${JSON.stringify(stream)} is not a stream: '*', 'r:<room>' or 'c:<client id>'`)
  }
}

/**
 * The Redis adapter's `RecoveryStore`: history in Redis Streams (history.ts), sessions in hashes
 * (sessions.ts), each on the shard of the channel it belongs with. Present on every Redis
 * adapter; it works once the adapter has started (`attach`).
 */
export class RedisRecovery implements RecoveryStore {
  #limits = DEFAULT_LIMITS
  #link: RecoveryLink | undefined
  readonly #stallTimeout: number
  readonly #maxPendingBytes: number
  /** This node's recorded publishes so far: the ordinal of the next is one more. */
  #ordinal = 0
  /** Epochs made by this node: a random part of its own, and a count. */
  readonly #epochStem = randomBytes(6).toString('base64url')
  #epochs = 0

  /**
   * @param stallTimeout ms a read or a session command waits for Redis at most
   * @param maxPendingBytes as the adapter's: records count against it as publishes do
   */
  constructor (stallTimeout: number, maxPendingBytes: number) {
    this.#stallTimeout = stallTimeout
    this.#maxPendingBytes = maxPendingBytes
  }

  /** Connects the store to the adapter's connection; called by the adapter's `start`. */
  attach (link: RecoveryLink): void {
    this.#link = link
  }

  configure (limits: RecoveryLimits): void {
    this.#limits = limits
  }

  /** Ms a session (and a stream's meta) outlives its last renewal: twice `maxDisconnection`, as the brief renewals come no more often than that. */
  get #ttl (): number {
    return 2 * this.#limits.maxDisconnection
  }

  /**
   * A new epoch: unique per call, whatever the node, so that a stream that starts a new life
   * never gets the epoch of an earlier one (which would make old offsets look current).
   */
  #newEpoch (): string {
    this.#epochs++
    return `${Date.now().toString(36)}${this.#epochStem}${this.#epochs.toString(36)}`
  }

  /** Where a stream lives; its name must have passed `checkStream`. */
  #place (link: RecoveryLink, stream: string): StreamPlace {
    if (stream === ALL_STREAM) {
      return { streamKey: allHistoryKey(link.keys, link.base), metaKey: allMetaKey(link.keys, link.base), room: undefined, channel: allChannel(link.base), mode: MODE_META }
    }
    const name = stream.slice(2)
    if (stream.startsWith('r:')) {
      return { streamKey: roomHistoryKey(link.keys, name), metaKey: roomMetaKey(link.keys, name), room: name, channel: roomChannel(link.base, name), mode: MODE_META }
    }
    return { streamKey: clientHistoryKey(link.keys, name), metaKey: sessionKey(link.keys, name), room: undefined, channel: clientChannel(link.base, name), mode: MODE_SESSION }
  }

  record (envelope: HubEnvelope): boolean {
    const link = this.#link
    const streams = envelope.kind === 'send'
      ? [clientStream(envelope.to)]
      : envelope.rooms === undefined ? [ALL_STREAM] : envelope.rooms.map(roomStream)
    const copies = streams.length
    if (link === undefined) return false
    if (!link.available()) {
      link.stats.dropped += Math.max(1, copies)
      return false
    }
    if (copies === 0) return false
    const body = encodeBody(link.node.nodeId, link.plainHeader, this.#ordinal + 1, envelope)
    // Redis slower than this node's publishes: the backlog, not the process, takes the loss.
    if (link.watch.pendingBytes + link.outbox.bytes + body.length * copies > this.#maxPendingBytes) {
      link.stats.dropped += copies
      return false
    }
    this.#ordinal++
    const publish = link.pubsub.sharded ? 'SPUBLISH' : 'PUBLISH'
    const { maxMessages } = this.#limits
    // One per publish is enough: no stream gets it twice, and none of its earlier lives had it.
    const epoch = this.#newEpoch()
    streams.forEach((stream, index) => {
      const place = this.#place(link, stream)
      const call: RecordCall = {
        keys: [place.streamKey, place.metaKey], channel: place.channel, maxMessages, ttl: this.#ttl, mode: place.mode, epoch, publish
      }
      // Each copy is its own buffer: its sequence number, per channel, is written into it.
      link.outbox.pushRecord(call, index === 0 ? body : Buffer.from(body))
    })
    return true
  }

  /** Runs a command that the caller waits for: within `stallTimeout`, any failure `RedisUnavailableError`. */
  async #ask<T> (command: (redis: AnyRedis, link: RecoveryLink) => Promise<T>): Promise<T> {
    const link = this.#link
    if (link === undefined || !link.available()) throw new RedisUnavailableError()
    try {
      return await within(link.watch.track(command(link.pubsub.commands, link)), this.#stallTimeout)
    } catch (error) {
      throw new RedisUnavailableError({ cause: error })
    }
  }

  /** Sends a write nobody waits for; a failure (or no link) is counted in `recoveryFailed`, never thrown. */
  #fire (command: (redis: AnyRedis, link: RecoveryLink) => Promise<unknown>): void {
    const link = this.#link
    if (link === undefined) return
    if (!link.available()) {
      link.stats.recoveryFailed++
      return
    }
    // Through a promise: ioredis's cluster client can throw at once (no master for the slot yet).
    link.watch.track(Promise.resolve().then(() => command(link.pubsub.commands, link))).catch((error: unknown) => {
      link.stats.recoveryFailed++
      link.node.log.debug({ err: error }, 'fastify-ws-hub redis: session write failed')
    })
  }

  /**
   * A PING on the subscriber connection: its answer comes after every message Redis queued for
   * this node before it. On a cluster the messages come from one connection per shard, which one
   * PING cannot order; there it resolves at once (order across streams is not promised there).
   */
  async sync (): Promise<void> {
    const link = this.#link
    if (link === undefined || link.pubsub.sharded || !link.available()) return
    await within(link.pubsub.subscriber.ping(), this.#stallTimeout).catch(() => {})
  }

  async top (stream: string): Promise<StreamPosition | null> {
    checkStream(stream)
    return await this.#ask((redis, link) => topOf(redis, this.#place(link, stream).metaKey))
  }

  async read (stream: string, after: StreamPosition | null): Promise<HistoryRead> {
    checkStream(stream)
    return await this.#ask((redis, link) => readHistory(redis, this.#place(link, stream), after, this.#limits.maxMessages))
  }

  createSession (clientId: string, record: SessionRecord): Promise<void> {
    return this.#ask((redis, link) =>
      sessions.createSession(redis, sessionKey(link.keys, clientId), clientHistoryKey(link.keys, clientId), record, this.#newEpoch(), this.#ttl))
  }

  readSession (clientId: string): Promise<SessionRecord | undefined> {
    return this.#ask((redis, link) => sessions.readSession(redis, sessionKey(link.keys, clientId)))
  }

  claimSession (clientId: string, token: string, newToken: string): Promise<SessionRecord | undefined> {
    return this.#ask((redis, link) => sessions.claimSession(redis, sessionKey(link.keys, clientId), token, newToken, this.#ttl))
  }

  joinSession (clientId: string, room: string, position: StreamPosition | null): void {
    this.#fire((redis, link) => sessions.joinSession(redis, sessionKey(link.keys, clientId), room, position))
  }

  leaveSession (clientId: string, room: string): void {
    this.#fire((redis, link) => sessions.leaveSession(redis, sessionKey(link.keys, clientId), room))
  }

  touchSessions (clientIds: readonly string[], rooms: readonly string[]): void {
    this.#fire((redis, link) => {
      const keys: string[] = []
      for (const id of clientIds) keys.push(sessionKey(link.keys, id), clientHistoryKey(link.keys, id))
      // A room's meta (its epoch) must outlive the sessions that hold a position in it, even
      // when nobody publishes to the room: else an idle room's next message starts a new epoch
      // and every session in it would have to start over. The streams themselves may lapse.
      for (const room of rooms) keys.push(roomMetaKey(link.keys, room))
      keys.push(allMetaKey(link.keys, link.base))
      return sessions.renew(redis, keys, this.#ttl)
    })
  }

  endSession (clientId: string, token: string): void {
    this.#fire((redis, link) =>
      sessions.endSession(redis, sessionKey(link.keys, clientId), clientHistoryKey(link.keys, clientId), token, this.#limits.maxDisconnection))
  }

  /**
   * Publishes a control message on the client's channel until nobody subscribes to it: a publish
   * answers with the number of subscribers reached, and only the node that holds a client
   * subscribes to its channel. The holder (this node too) calls `HubNode.release` at each one.
   * A standalone Redis counts pattern subscribers too (a PSUBSCRIBE of the prefix, by a monitor):
   * with one of them, `release` never resolves true.
   */
  async release (clientId: string, timeout: number): Promise<boolean> {
    const deadline = Date.now() + timeout
    const message = encodeControl(CONTROL_RELEASE, clientId)
    for (;;) {
      const link = this.#link
      if (link !== undefined && link.available()) {
        try {
          const channel = clientChannel(link.base, clientId)
          const reached = await within(link.watch.track(Promise.resolve().then(() => link.pubsub.publish(channel, message))), this.#stallTimeout)
          if (Number(reached) === 0) return true
        } catch {
          // Unknown whether someone holds it: ask again, and say false if it stays unknown.
        }
      }
      const left = deadline - Date.now()
      if (left <= 0) return false
      await new Promise(resolve => setTimeout(resolve, Math.min(RELEASE_RETRY, left)))
    }
  }
}
