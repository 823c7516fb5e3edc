import type { HubAdapter } from '../adapters/adapter.ts'
import type { FastifyBaseLogger } from 'fastify'
import type { EncodedMessage } from '../message.ts'
import type { PresenceOptions } from '../options.ts'
import type { PresenceMember, PresenceStore } from './store.ts'

/** The wire types of presence events; `$` types are the hub's own, so no route can declare them. */
export const JOIN_EVENT = '$join'
export const LEAVE_EVENT = '$leave'

/** What the tracker needs of the hub core (an interface, so that this file imports no runtime code of it). */
export interface PresenceNode {
  readonly nodeId: string
  readonly adapter: HubAdapter
  readonly log: FastifyBaseLogger
  deliverLocal (message: EncodedMessage, rooms: readonly string[] | undefined, except: string | undefined): number
}

/** A member as the tracker sees it: its id and its params. */
export interface PresenceSubject {
  readonly id: string
  readonly params: object
}

/**
 * Presence of one hub: enters and removes this node's members in the adapter's store, and tells
 * the rooms (`$join`, `$leave`) once the store has the change, so that a member who hears of a
 * join finds the joiner in `hub.presence()`. Events go through the plain broadcast path, never
 * into session history: presence is state, `hub.presence()` gives it again after a resume.
 */
export class PresenceTracker {
  readonly #rooms: (room: string) => boolean
  readonly #params: readonly string[]
  readonly #store: PresenceStore
  readonly #node: PresenceNode

  constructor (options: Required<PresenceOptions>, store: PresenceStore, node: PresenceNode) {
    this.#rooms = options.rooms
    this.#params = options.params
    this.#store = store
    this.#node = node
  }

  /** Whether a room has presence. A `rooms` function that throws is logged and means no: it must not break joins nor closes. */
  covers (room: string): boolean {
    try {
      return this.#rooms(room) === true
    } catch (error) {
      this.#node.log.warn({ err: error, room }, 'fastify-ws-hub: presence.rooms threw; the room is taken as without presence')
      return false
    }
  }

  /** A client joined a presence room here: enter it, then tell the others. */
  entered (client: PresenceSubject, room: string): void {
    const member: PresenceMember = { id: client.id, nodeId: this.#node.nodeId, params: this.#shared(client.params), since: Date.now() }
    this.#store.enter(room, member).then(() => { this.#announce(JOIN_EVENT, room, member.id, member.params) }, this.#failed)
  }

  /** A client left a presence room here (or closed): remove it, and tell the room only if the entry was ours. */
  left (client: PresenceSubject, room: string): void {
    const params = this.#shared(client.params)
    this.#store.exit(room, client.id).then((gone) => {
      if (gone) this.#announce(LEAVE_EVENT, room, client.id, params)
    }, this.#failed)
  }

  /** Members of a dead node that the store removed (see `HubNode.presenceLapsed`): each leave is told here, once in the cluster. */
  lapsed (room: string, members: readonly PresenceMember[]): void {
    for (const member of members) this.#announce(LEAVE_EVENT, room, member.id, member.params)
  }

  /** Every member of a room on every live node. */
  members (room: string): Promise<PresenceMember[]> {
    return this.#store.members(room)
  }

  /** The params the option shares, as JSON values; a value JSON cannot carry is left out rather than failing the join. */
  #shared (params: object): Record<string, unknown> {
    const shared: Record<string, unknown> = {}
    for (const key of this.#params) {
      const value = (params as Record<string, unknown>)[key]
      if (value === undefined) continue
      try {
        const json = JSON.stringify(value)
        if (json !== undefined) shared[key] = JSON.parse(json)
      } catch {}
    }
    return shared
  }

  /** To the room's members on every node but the member's own socket: the normal broadcast path. */
  #announce (type: string, room: string, id: string, params: Readonly<Record<string, unknown>>): void {
    const message: EncodedMessage = { payload: Buffer.from(JSON.stringify({ type, data: { room, id, params } })), binary: false }
    const rooms = [room]
    this.#node.deliverLocal(message, rooms, id)
    this.#node.adapter.publish({ kind: 'broadcast', payload: message.payload, binary: false, rooms, except: id })
  }

  /** The store promises never to reject; one that does (a custom adapter) is logged, not thrown into the hub. */
  readonly #failed = (error: unknown): void => {
    this.#node.log.warn({ err: error }, 'fastify-ws-hub: the presence store failed')
  }
}
