import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { IncomingMessage } from 'node:http'
import type { TSchema } from '@sinclair/typebox'
import type { FastifyBaseLogger } from 'fastify'
import type { HubAdapter, HubEnvelope, HubNode, NodeMessage } from './adapters/adapter.ts'
import { memoryAdapter } from './adapters/memory.ts'
import type { Client } from './client.ts'
import { addRoom, deleteRoom, inRoom, takeRooms } from './client-rooms.ts'
import type { Hub } from './hub.ts'
import { CloseCode } from './constants.ts'
import { refuseUpgrade } from './upgrade-refusal.ts'
import { FanOut } from './fanout.ts'
import type { SharedDeflate } from './deflate.ts'
import { frameFor, MessageFrames } from './message-frames.ts'
import type { EncodedMessage } from './message.ts'
import type { ResolvedHubOptions } from './options.ts'
import { createCounters, type HubStats } from './stats.ts'
import { RELEASE_PROBE, type ClientSession } from './recovery/session.ts'
import type { RecordedEnvelope, RecoveryStore } from './recovery/store.ts'
import { encodePosition, withPosition } from './recovery/wire.ts'
import { ClusterControl } from './control/cluster-control.ts'
import { ConnectionCounts, HubMetrics, MetricsExporter, messageOutChannel } from './metrics/index.ts'
import type { PresenceMember } from './presence/store.ts'
import { PresenceTracker } from './presence/tracker.ts'

const OPEN = 1
const RESOLVED = Promise.resolve()

/**
 * A typed route's schemas as it was registered: what the hub can describe of its protocol (an
 * AsyncAPI document). Plain data, so that the core knows nothing of how typed routes run.
 */
export interface TypedRouteDescription {
  /** The route's full path, the registering plugin's prefix included. */
  readonly url: string
  /** Incoming message schemas, by type. */
  readonly messages: Readonly<Record<string, TSchema>>
  /** Outgoing event schemas, by type. */
  readonly events: Readonly<Record<string, TSchema>>
  /** Reply schemas, by incoming message type (only the declared ones). */
  readonly replies: Readonly<Record<string, TSchema>>
}

/**
 * The state every view of a hub shares: clients, rooms, counters, and the one place where frames
 * are written. It is also the node that the adapter delivers other nodes' messages to.
 */
export class HubCore implements HubNode {
  readonly nodeId = randomUUID()
  readonly clients = new Map<string, Client>()
  readonly rooms = new Map<string, Set<Client>>()
  readonly counters = createCounters()
  /** Connections opened, and closed by close code. */
  readonly connections = new ConnectionCounts()
  /** The histograms, when the `metrics` option is on. */
  readonly metrics: HubMetrics | undefined
  /** What `hub.metrics()` and the metrics route answer. */
  readonly exporter: MetricsExporter
  readonly options: ResolvedHubOptions
  readonly adapter: HubAdapter
  readonly log: FastifyBaseLogger
  readonly fanOut = new FanOut()
  /**
   * The compression the sockets without server context takeover share, when the ws server has
   * permessage-deflate on. Set by the plugin once the ws server exists.
   */
  sharedDeflate: SharedDeflate | undefined
  /** Open clients per remote address, for `maxConnectionsPerIp`. */
  readonly clientsPerIp = new Map<string, number>()
  closing = false
  /** Closes begun by the server (`client.close`, terminations): a new one gives the heartbeat a deadline to watch. */
  closesBegun = 0
  /** Upgrades admitted but neither opened nor refused yet: each holds a connection slot and an IP slot. */
  pendingUpgrades = 0
  /**
   * Each admitted upgrade (its raw request) and its address ('' when `maxConnectionsPerIp` is off
   * and addresses are not looked up). Held only until the upgrade opens or is refused.
   */
  readonly #reservations = new Map<IncomingMessage, string>()
  /** Called when the last pending upgrade settles, while shutdown waits for them. */
  #upgradesSettled: (() => void) | undefined
  /** Grows at every change of the clients or of a room's members: lets an adapter skip unchanged state cheaply. */
  membershipVersion = 0
  /** Every typed route registered on this hub, in registration order. */
  readonly typedRoutes: TypedRouteDescription[] = []
  /** The app's root view of the hub: what `client.hub` is. Set by the plugin. */
  hub: Hub | undefined
  /** History and sessions, when the `recovery` option is on. */
  readonly store: RecoveryStore | undefined
  /** Cluster-wide operations (`fetchClients`, `join`, `leave`, `disconnect`, node messages). */
  readonly control = new ClusterControl(this)
  /** Members of the presence rooms, when the `presence` option is on. */
  readonly presence: PresenceTracker | undefined
  #sessionKeeper: NodeJS.Timeout | undefined
  /**
   * The last recorded offset this node delivered per stream it has clients in: an offset that
   * skips some means this node missed messages (Redis cut its subscription, an outage).
   */
  readonly #delivered = new Map<string, { epoch: string, offset: number }>()
  #broadcastMark = 0
  /** Most unsent bytes a client may hold: `maxBufferedBytes + maxBurstBytes`. */
  readonly #ceiling: number
  /** Clients opened whose onClose has not finished yet: shutdown waits for them. */
  #unfinished = 0
  #allFinished: (() => void) | undefined

  constructor (options: ResolvedHubOptions, log: FastifyBaseLogger) {
    this.options = options
    this.log = log
    this.adapter = options.adapter ?? memoryAdapter()
    this.#ceiling = options.maxBufferedBytes + options.maxBurstBytes
    this.store = options.recovery === false ? undefined : this.adapter.recovery
    this.store?.configure(options.recovery as Exclude<ResolvedHubOptions['recovery'], false>)
    this.metrics = options.metrics === false ? undefined : new HubMetrics()
    this.exporter = new MetricsExporter(this, options.metrics, log)
    const presence = this.adapter.presence
    this.presence = options.presence === false || presence === undefined ? undefined : new PresenceTracker(options.presence, presence, this)
  }

  handleNodeMessage (message: NodeMessage, from: string): Promise<unknown> {
    return this.control.handle(message, from)
  }

  presenceLapsed (room: string, members: readonly PresenceMember[]): void {
    this.presence?.lapsed(room, members)
  }

  holds (clientId: string): boolean {
    return this.clients.has(clientId)
  }

  /**
   * Another connection presents this client's session. Its socket may be half-open (the network
   * dropped, no close reached us): a ping it does not answer within `RELEASE_PROBE` ms proves it
   * dead, and it is terminated so that the session can move. A socket that answers keeps it.
   */
  release (clientId: string): void {
    const client = this.clients.get(clientId)
    if (client === undefined || client._probing) return
    client._probing = true
    const askedAt = Date.now()
    try {
      client.socket.ping()
    } catch {}
    setTimeout(() => {
      client._probing = false
      if (client._heardAt < askedAt) client._terminate()
    }, RELEASE_PROBE).unref()
  }

  /** Keeps the sessions of open clients, and the history of their rooms, alive in the store. */
  keepSessions (): void {
    const store = this.store
    const limits = this.options.recovery
    if (store === undefined || limits === false) return
    this.#sessionKeeper = setInterval(() => {
      const ids: string[] = []
      for (const client of this.clients.values()) {
        if (client._session !== undefined) ids.push(client.id)
      }
      if (ids.length > 0 || this.rooms.size > 0) store.touchSessions(ids, [...this.rooms.keys()])
      // A quarter of the session's life left between two renewals, whatever maxDisconnection is.
    }, Math.max(10, Math.floor(limits.maxDisconnection / 4))).unref()
  }

  stopKeepingSessions (): void {
    clearInterval(this.#sessionKeeper)
  }

  /**
   * Closes a client with a session with 1013 so that it resumes and gets from the history what it
   * would otherwise miss (counted in `recoveryCloses`).
   */
  closeToResume (client: Client, reason: string): void {
    if (client._state !== 'open') return
    this.counters.recoveryCloses++
    client.close(CloseCode.tryAgainLater, reason)
  }

  /**
   * Sends an event to one client by id: into its history when it has a session (it then comes
   * back with its position, and survives a lost link), else written to it here, or handed to the
   * other nodes when it is not here.
   * @returns true when it was written, recorded or handed over
   */
  sendEventTo (clientId: string, message: EncodedMessage): boolean {
    const client = this.clients.get(clientId)
    if (client !== undefined && client._session === undefined) return this.writeMessage(client, message)
    if (this.store?.record({ kind: 'send', to: clientId, payload: message.payload, binary: false }) === true) return true
    if (client !== undefined) return this.writeMessage(client, message)
    return this.adapter.publish({ kind: 'send', to: clientId, payload: message.payload, binary: false })
  }

  /**
   * Writes a recorded message (with its position) to a client with a session. A message that
   * cannot be written would leave a hole in the client's stream, which its position would skip:
   * the client is closed instead (1013), so that it resumes and gets it from the history.
   * @returns false when it was not written
   */
  writeRecorded (client: Client, message: EncodedMessage, frames?: MessageFrames): boolean {
    if (this.writeMessage(client, message, frames)) return true
    this.closeToResume(client, 'fell behind: resume to catch up')
    return false
  }

  onlineCount (): number {
    return this.clients.size
  }

  roomSize (room: string): number {
    return this.rooms.get(room)?.size ?? 0
  }

  /**
   * Adds an open client to the hub.
   * @returns pending until messages sent to it from other nodes reach this node (see `HubAdapter.watch`); undefined when they do already
   */
  add (client: Client): Promise<void> | undefined {
    this.clients.set(client.id, client)
    this.membershipVersion++
    this.#unfinished++
    return this.adapter.watch?.('client', client.id)
  }

  /** Notes that a client's onClose has finished: its whole life is over. */
  finished (): void {
    if (--this.#unfinished === 0) this.#allFinished?.()
  }

  /** Removes a client from the hub and from every room it joined. */
  remove (client: Client): void {
    if (!this.clients.delete(client.id)) return
    this.membershipVersion++
    this.adapter.unwatch?.('client', client.id)
    // The session outlives the connection by maxDisconnection (unless another connection took it over).
    if (client._session !== undefined) this.store?.endSession(client.id, client._session.tokenDigest)
    this.#delivered.delete(`c:${client.id}`)
    if (client._rooms !== undefined) {
      for (const room of takeRooms(client)) this.#leaveRoom(client, room)
    }
    this.releaseIp(client._ip)
  }

  /**
   * Adds a client to a room.
   * @returns resolves once the room's broadcasts from other nodes reach this node (never rejects)
   */
  join (client: Client, room: string): Promise<void> {
    if (typeof room !== 'string') throw new TypeError('A room name must be a string')
    let members = this.rooms.get(room)
    if (members === undefined) {
      members = new Set()
      this.rooms.set(room, members)
    }
    members.add(client)
    this.membershipVersion++
    const added = addRoom(client, room)
    if (added && this.presence?.covers(room) === true) this.presence.entered(client, room)
    // Every join asks, not only the first: a second member must wait for a subscription still on its way.
    return this.adapter.watch?.('room', room) ?? RESOLVED
  }

  leave (client: Client, room: string): void {
    if (deleteRoom(client, room)) this.#leaveRoom(client, room)
  }

  #leaveRoom (client: Client, room: string): void {
    const members = this.rooms.get(room)
    if (members === undefined) return
    members.delete(client)
    this.membershipVersion++
    if (this.presence?.covers(room) === true) this.presence.left(client, room)
    if (members.size === 0) {
      this.rooms.delete(room)
      // Its messages stop coming: a later member starts a new run of offsets.
      this.#delivered.delete(`r:${room}`)
      this.adapter.unwatch?.('room', room)
    }
  }

  /** Open clients plus admitted upgrades: what `maxConnections` caps. */
  connectionCount (): number {
    return this.clients.size + this.pendingUpgrades
  }

  /**
   * Holds a connection slot and an IP slot for an admitted upgrade, so that concurrent upgrades
   * cannot all pass the caps while their `onUpgrade` runs. `key` is the raw request.
   */
  reserve (key: IncomingMessage, ip: string): void {
    this.#reservations.set(key, ip)
    this.pendingUpgrades++
    this.holdIp(ip)
  }

  /** Whether an admitted upgrade still holds its reservation (it has neither opened nor been refused). */
  reserved (key: IncomingMessage): boolean {
    return this.#reservations.has(key)
  }

  /** Frees the slots of an upgrade that was refused or whose peer left (once: later calls do nothing). */
  releaseReservation (key: IncomingMessage): void {
    const ip = this.#reservations.get(key)
    if (ip === undefined) return
    this.#reservations.delete(key)
    this.#upgradeSettled()
    this.releaseIp(ip)
  }

  #upgradeSettled (): void {
    if (--this.pendingUpgrades === 0) this.#upgradesSettled?.()
  }

  /** The upgrade became a client (admission reserved it: it is the first hook of every hub route); its IP slot stays held until the client leaves. */
  settleReservation (key: IncomingMessage): string {
    const ip = this.#reservations.get(key)
    if (ip === undefined) return ''
    this.#reservations.delete(key)
    this.#upgradeSettled()
    return ip
  }

  /**
   * At shutdown: gives upgrades still inside their hooks (`onUpgrade` above all) `shutdownTimeout`
   * to settle (each then opens and is closed 1001, or is refused), then answers the rest 503 and
   * closes their connections, so that no hook, however long, holds `app.close()`. A hook that
   * settles later finds its connection gone and opens nothing.
   */
  async settleUpgrades (): Promise<void> {
    if (this.pendingUpgrades === 0) return
    const settled = new Promise<void>(resolve => { this.#upgradesSettled = resolve })
    const inTime = await this.#within(settled)
    this.#upgradesSettled = undefined
    if (inTime) return
    for (const request of [...this.#reservations.keys()]) {
      this.releaseReservation(request)
      refuseUpgrade(request.socket)
    }
  }

  /** Counts one more open socket for an address. */
  holdIp (ip: string): void {
    if (ip === '') return
    this.clientsPerIp.set(ip, (this.clientsPerIp.get(ip) ?? 0) + 1)
  }

  /** Releases an address's slot. */
  releaseIp (ip: string): void {
    if (ip === '') return
    const count = (this.clientsPerIp.get(ip) ?? 1) - 1
    if (count <= 0) this.clientsPerIp.delete(ip)
    else this.clientsPerIp.set(ip, count)
  }

  /**
   * Writes one message to one client, with the frames of its whole audience when the caller has
   * them (`frames`, made from `message`), else framed (and compressed) for this client alone.
   * @returns false when the client cannot take it (closing, or a slow consumer: counted as dropped)
   */
  writeMessage (client: Client, message: EncodedMessage, frames?: MessageFrames): boolean {
    const socket = client.socket
    // Not greeted yet: its handshake message must be the first thing it gets.
    if (client._state !== 'open' || !client._greeted || socket.readyState !== OPEN) return false
    if (!this.#hasRoomFor(client)) {
      this.counters.dropped++
      if (client._slowSince === 0) client._slowSince = Date.now()
      return false
    }
    if (client._raw !== undefined) {
      this.fanOut.write(client, frames === undefined ? frameFor(message, client._deflate) : frames.for(client._deflate))
    } else {
      socket.send(message.payload, { binary: message.binary })
    }
    this.counters.messagesOut++
    this.counters.bytesOut += message.payload.length
    if (messageOutChannel.hasSubscribers) messageOutChannel.publish({ client, data: message.payload, isBinary: message.binary })
    return true
  }

  /**
   * Whether a client takes one more message now. A client is a slow consumer for a whole turn when
   * it had more than `maxBufferedBytes` unsent as the turn first wrote to it: what earlier turns
   * wrote and the kernel has not taken. What this turn writes does not count against that mark (a
   * burst of sends in one loop to a client that reads is not a slow client), only against the
   * ceiling `maxBufferedBytes + maxBurstBytes`, which bounds a client's unsent bytes at all times.
   */
  #hasRoomFor (client: Client): boolean {
    const fanOut = this.fanOut
    const unsent = client.socket.bufferedAmount
    if (client._turn !== fanOut.turn) {
      client._turn = fanOut.turn
      fanOut.holdTurn()
      client._slowThisTurn = unsent > this.options.maxBufferedBytes
    }
    return !client._slowThisTurn && unsent <= this.#ceiling
  }

  /**
   * Writes a message to every matching local client, framing it once.
   * @returns the number of clients it was written to
   */
  deliverLocal (message: EncodedMessage, rooms: readonly string[] | undefined, except: string | undefined): number {
    const metrics = this.metrics
    if (metrics === undefined) return this.#deliverLocal(message, rooms, except)
    const started = performance.now()
    const written = this.#deliverLocal(message, rooms, except)
    metrics.fanOut.observe((performance.now() - started) / 1000)
    return written
  }

  #deliverLocal (message: EncodedMessage, rooms: readonly string[] | undefined, except: string | undefined): number {
    const frames = new MessageFrames(message)
    let written = 0
    if (rooms === undefined) {
      for (const client of this.clients.values()) {
        if (client.id !== except && this.writeMessage(client, message, frames)) written++
      }
      return written
    }
    if (rooms.length === 1) {
      const members = this.rooms.get(rooms[0] as string)
      if (members === undefined) return 0
      for (const client of members) {
        if (client.id !== except && this.writeMessage(client, message, frames)) written++
      }
      return written
    }
    // A client in several of the rooms must get the message once: mark it with this broadcast's number.
    const mark = ++this.#broadcastMark
    for (const room of rooms) {
      const members = this.rooms.get(room)
      if (members === undefined) continue
      for (const client of members) {
        if (client._broadcastMark === mark) continue
        client._broadcastMark = mark
        if (client.id !== except && this.writeMessage(client, message, frames)) written++
      }
    }
    return written
  }

  /** Delivers an envelope that another node published, or a recorded one (from any node, this one included). */
  deliver (envelope: HubEnvelope): void {
    const metrics = this.metrics
    if (metrics !== undefined && envelope.kind === 'broadcast') {
      if (envelope.publishedAt !== undefined) metrics.deliveryDelay.observe(Math.max(0, Date.now() - envelope.publishedAt) / 1000)
      // Plain copies are timed by deliverLocal; recorded ones and one room's copy of several here.
      if (envelope.via !== undefined || (envelope as Partial<RecordedEnvelope>).position !== undefined) {
        const started = performance.now()
        this.#deliver(envelope)
        metrics.fanOut.observe((performance.now() - started) / 1000)
        return
      }
    }
    this.#deliver(envelope)
  }

  #deliver (envelope: HubEnvelope): void {
    if ((envelope as Partial<RecordedEnvelope>).position !== undefined) {
      this.#deliverRecorded(envelope as RecordedEnvelope)
      return
    }
    const message = { payload: envelope.payload, binary: envelope.binary }
    if (envelope.kind === 'broadcast') {
      if (envelope.via === undefined) {
        this.deliverLocal(message, envelope.rooms, envelope.except)
      } else {
        // One room's copy of a broadcast to several rooms: the rule of `BroadcastEnvelope.via`.
        const frames = new MessageFrames(message)
        this.#eachTarget(envelope, (client) => { this.writeMessage(client, message, frames) })
      }
      return
    }
    const client = this.clients.get(envelope.to)
    if (client !== undefined) this.writeMessage(client, message)
  }

  /**
   * Delivers a recorded message: with its position to clients with a session (or into their
   * pending list while their session is being set up), as it is to the others.
   */
  #deliverRecorded (envelope: RecordedEnvelope): void {
    const plain = new MessageFrames({ payload: envelope.payload, binary: envelope.binary })
    let withPos: MessageFrames | undefined
    const { stream, epoch, offset } = envelope.position
    // No client here for it (a room given up a moment ago, a client gone): its offsets are not tracked either.
    if (stream.startsWith('r:') ? !this.rooms.has(stream.slice(2)) : stream.startsWith('c:') && !this.clients.has(stream.slice(2))) return
    const last = this.#delivered.get(stream)
    // Messages of this stream went missing on their way to this node: a client with a session
    // must not have its position jump over them. It is closed (1013) and resumes from its own
    // position, which the history covers.
    const missed = last !== undefined && last.epoch === epoch && offset > last.offset + 1
    if (last === undefined || last.epoch !== epoch || offset > last.offset) this.#delivered.set(stream, { epoch, offset })
    let positionOnly: EncodedMessage | undefined
    this.#eachTarget(envelope, (client) => {
      const session = client._session
      if (session === undefined) {
        this.writeMessage(client, plain.message, plain)
      } else if (!this.#heldBack(client, session, envelope, missed)) {
        withPos ??= new MessageFrames({ payload: withPosition(envelope.payload, stream, epoch, offset), binary: false })
        this.writeRecorded(client, withPos.message, withPos)
      }
    }, (client) => {
      // It gets this broadcast through an earlier room's copy; its position in this room still
      // moves past this copy, or a resume after it left the earlier room would give it again.
      const session = client._session
      if (session !== undefined && !this.#heldBack(client, session, envelope, missed)) {
        this.writeRecorded(client, positionOnly ??= { payload: encodePosition(stream, epoch, offset), binary: false })
      }
    })
  }

  /**
   * What becomes of a recorded event for a client with a session, before it is written: kept for
   * later while the session is being set up, skipped when the resume's replay gave it already,
   * or the client closed (1013) when this node missed events of the stream before it.
   * @returns true when it is not to be written now
   */
  #heldBack (client: Client, session: ClientSession, envelope: RecordedEnvelope, missed: boolean): boolean {
    if (session.pending !== undefined) {
      session.pending.push(envelope)
      return true
    }
    if (this.#given(client, session, envelope.position)) return true
    if (missed) {
      this.closeToResume(client, 'missed events: resume to catch up')
      return true
    }
    return false
  }

  /**
   * Whether the greeting of a resumed (or new) session gave this recorded event already (see
   * `ClientSession.floors`). The first event past a stream's floor ends it; one that skips offsets
   * past it means this node never got some: the client is closed (1013) and resumes from there.
   */
  #given (client: Client, session: ClientSession, { stream, epoch, offset }: RecordedEnvelope['position']): boolean {
    const floor = session.floors?.get(stream)
    if (floor === undefined || floor.epoch !== epoch) return false
    if (offset <= floor.offset) return true
    session.floors?.delete(stream)
    if (offset > floor.offset + 1) {
      this.closeToResume(client, 'missed events: resume to catch up')
      return true
    }
    return false
  }

  /**
   * Calls `write` for each local client an envelope is for. A recorded broadcast to several rooms
   * comes as one copy per room, each with `via` (see `BroadcastEnvelope.via`); `skipped` gets the
   * members of that room who get another room's copy.
   */
  #eachTarget (envelope: HubEnvelope, write: (client: Client) => void, skipped?: (client: Client) => void): void {
    if (envelope.kind === 'send') {
      const client = this.clients.get(envelope.to)
      if (client !== undefined) write(client)
      return
    }
    const { rooms, except, via } = envelope
    if (rooms === undefined) {
      for (const client of this.clients.values()) {
        if (client.id !== except) write(client)
      }
      return
    }
    const room = via ?? rooms[0]
    const members = room === undefined ? undefined : this.rooms.get(room)
    if (members === undefined) return
    const earlier = via === undefined ? [] : rooms.slice(0, rooms.indexOf(via))
    for (const client of members) {
      if (client.id === except) continue
      if (earlier.length > 0 && earlier.some(name => inRoom(client, name))) {
        skipped?.(client)
        continue
      }
      write(client)
    }
  }

  stats (): HubStats {
    const stats: HubStats = { clients: this.clients.size, rooms: this.rooms.size, ...this.counters }
    const adapterStats = this.adapter.stats?.()
    if (adapterStats !== undefined) {
      for (const [name, value] of Object.entries(adapterStats)) stats[`adapter.${name}`] = value
    }
    return stats
  }

  /**
   * Closes every client with 1001 and waits for their close handshakes and `onClose` hooks, at most
   * `shutdownTimeout` ms; whoever is still there then is terminated, and their `onClose` hooks get
   * one more `shutdownTimeout` before shutdown goes on without them (with a warning).
   */
  async closeAll (): Promise<void> {
    if (this.#unfinished === 0) return
    const finished = new Promise<void>(resolve => { this.#allFinished = resolve })
    for (const client of this.clients.values()) {
      if (client._state === 'open') client.close(CloseCode.goingAway, 'server shutdown')
    }
    if (!await this.#within(finished)) {
      for (const client of this.clients.values()) client._terminate()
      if (!await this.#within(finished)) {
        this.log.warn({ unfinished: this.#unfinished }, 'fastify-ws-hub: onClose hooks still running after shutdownTimeout')
      }
    }
    this.#allFinished = undefined
  }

  /** Resolves true if the promise settles within `shutdownTimeout`, false otherwise. */
  async #within (promise: Promise<void>): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<boolean>(resolve => { timer = setTimeout(resolve, this.options.shutdownTimeout, false) })
    const settled = await Promise.race([promise.then(() => true), timedOut])
    clearTimeout(timer)
    return settled
  }
}
