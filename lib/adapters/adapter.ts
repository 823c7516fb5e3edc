import type { FastifyBaseLogger } from 'fastify'
import type { RecoveryStore } from '../recovery/store.ts'
import type { PresenceMember, PresenceStore } from '../presence/store.ts'

/** A broadcast that travels between nodes: the payload is already encoded, framing is per node. */
export interface BroadcastEnvelope {
  kind: 'broadcast'
  /** Frame payload. */
  payload: Buffer
  /** Binary (`true`) or text (`false`) frame. */
  binary: boolean
  /** Only members of any of these rooms receive it; absent means every client. */
  rooms?: readonly string[]
  /** Id of a client that must not receive it. */
  except?: string
  /**
   * Set by an adapter that carries a broadcast to several rooms as one copy per room: the room of
   * this copy. It goes to the members of that room who are in none of the rooms listed before it
   * in `rooms` (those get the copy of the first of them), so each member gets it once, through
   * one room's copy, in order with that room's other messages.
   */
  via?: string
  /**
   * Set by an adapter that knows it, on a broadcast it delivers from another node: when (ms since
   * the epoch, the publisher's clock) it was published. It feeds the delivery delay histogram.
   */
  publishedAt?: number
}

/** A message for one client, wherever in the cluster it is connected. */
export interface DirectEnvelope {
  kind: 'send'
  /** Id of the receiving client. */
  to: string
  /** Frame payload. */
  payload: Buffer
  /** Binary (`true`) or text (`false`) frame. */
  binary: boolean
}

/** What one node publishes to the others. */
export type HubEnvelope = BroadcastEnvelope | DirectEnvelope

/**
 * Which other nodes a node message is for: every node, the nodes with members of a room, or the
 * node that holds a client. An adapter may reach more nodes than these (a node still subscribed to
 * a room it just emptied): each answers for what it holds, nothing when it holds nothing.
 */
export type NodeAudience =
  | { readonly kind: 'all' }
  | { readonly kind: 'room', readonly room: string }
  | { readonly kind: 'client', readonly id: string }

/**
 * A message from one node to others, not to clients: the hub's cluster-wide operations
 * (`fetchClients`, `join`, `leave`, `disconnect`) and the application's `emitToNodes`. Plain JSON.
 */
export interface NodeMessage {
  /** What the receiving node is asked to do. */
  readonly op: string
  /** The operation's arguments. */
  readonly [argument: string]: unknown
}

/** One node's answer to a node message sent with `askNodes`. */
export interface NodeAnswer {
  /** The answering node. */
  readonly nodeId: string
  /** What its `HubNode.handleNodeMessage` returned (plain JSON). */
  readonly answer: unknown
}

/** The side of a hub that an adapter talks to. */
export interface HubNode {
  /** Unique id of this node (process) in the cluster. */
  readonly nodeId: string
  /**
   * Delivers an envelope published by another node to this node's matching clients; or a recorded
   * one (`RecordedEnvelope`, with its position in its stream's history), from any node this one
   * included: a node gets its own recorded publishes back from the store, in stream order.
   */
  deliver (envelope: HubEnvelope): void
  /** Open clients on this node. */
  onlineCount (): number
  /** Local members of a room. */
  roomSize (room: string): number
  /** Local rooms with at least one member, for adapters that publish room sizes (the Redis lease). */
  readonly rooms: ReadonlyMap<string, ReadonlySet<unknown>>
  /** Grows at every change of the local clients or room memberships: unchanged means nothing to republish. */
  readonly membershipVersion: number
  /** The Fastify logger, for the adapter's own warnings. */
  readonly log: FastifyBaseLogger
  /**
   * Another node wants to resume the session of this client: let it go if its socket is dead (a
   * ping left unanswered, as on a half-open connection); keep it if it answers. Does nothing for a
   * client this node does not hold.
   */
  release (clientId: string): void
  /** Whether this node holds the client now (an open socket, resumable or not). */
  holds (clientId: string): boolean
  /**
   * A node message from another node (`askNodes`, `notifyNodes`): acts on it, and returns the
   * answer to send back (plain JSON), or a promise of it. Never throws, never rejects: a message
   * it cannot make sense of is answered `null` and logged.
   * @param from the id of the node that sent it
   */
  handleNodeMessage (message: NodeMessage, from: string): unknown
  /**
   * The presence store removed these members of a room: their node died (its lease is gone). The
   * hub tells the room's members on every node that they left (`$leave`). The store calls it on
   * one node only per member (the one whose removal got them), so each leave is told once.
   */
  presenceLapsed (room: string, members: readonly PresenceMember[]): void
}

/** What a node can ask to receive from the others: a room's broadcasts, or the messages `sendTo` one of its clients. */
export type Interest = 'room' | 'client'

/**
 * How hubs of several processes reach each other. The hub delivers every message locally itself,
 * then hands it to `publish`; the adapter carries it to the other nodes and calls their `deliver`.
 * An adapter must deliver each envelope to each node that wants it at most once, in publish order
 * per publisher and room (per publisher and client for `sendTo`), and must never deliver a node's
 * own envelopes back to it. An adapter with `watch` may skip the nodes that do not hold the room
 * or the client; one without it delivers everything everywhere.
 */
export interface HubAdapter {
  /** Connects the adapter to its hub; called once when the Fastify instance becomes ready. */
  start (node: HubNode): Promise<void> | void
  /**
   * Sends an envelope to every other node. Never throws: failures are counted in `stats()`.
   * @returns true when the envelope left this node, false when it was dropped (no other node, link down)
   */
  publish (envelope: HubEnvelope): boolean
  /** Open clients on every live node. */
  clusterCount (): Promise<number>
  /** Members of a room on every live node. */
  clusterRoomSize (room: string): Promise<number>
  /**
   * The node has its first local member of a room (`'room'`), or a client opened (`'client'`): the
   * adapter starts carrying that room's broadcasts, or that client's messages, to this node. The
   * hub calls it at every join (a room already watched returns its pending promise, if any).
   * @returns a promise that resolves (never rejects) once what other nodes publish for it reaches
   *   this node; undefined when that is so already
   */
  watch? (kind: Interest, name: string): Promise<void> | undefined
  /** The room lost its last local member, or the client left: the adapter may stop carrying its traffic here. */
  unwatch? (kind: Interest, name: string): void
  /**
   * Sends a node message to the other nodes of an audience and collects their answers: each node
   * that gets it calls its `HubNode.handleNodeMessage` and the answer comes back. Resolves once every
   * node it reached has answered. Rejects with `NodesTimeoutError` (holding the answers that came)
   * when some did not answer within `timeout` ms, and with the adapter's own error when the
   * message could not be sent. Adapters without it act on this node alone.
   */
  askNodes? (audience: NodeAudience, message: NodeMessage, timeout: number): Promise<NodeAnswer[]>
  /**
   * Sends a node message to the other nodes of an audience, without answers (`emitToNodes`).
   * Never throws. In publish order per publisher and audience.
   * @returns true when it left this node, false when it was dropped (no other node, link down)
   */
  notifyNodes? (audience: NodeAudience, message: NodeMessage): boolean
  /** Who is in the presence rooms on every node, for hubs with the `presence` option. */
  readonly presence?: PresenceStore
  /** History and sessions, for hubs with the `recovery` option; adapters without it cannot recover sessions. */
  readonly recovery?: RecoveryStore
  /** Counters of the adapter's own (published, dropped, malformed...), merged into `hub.stats()`. */
  stats? (): Readonly<Record<string, number>>
  /** Leaves the cluster and frees every resource; called once when the Fastify instance closes. */
  close (): Promise<void> | void
}
