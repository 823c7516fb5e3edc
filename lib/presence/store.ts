/** One member of a presence room, as `hub.presence(room)` lists it. */
export interface PresenceMember {
  /** The client's id. */
  readonly id: string
  /** The node that holds the client. */
  readonly nodeId: string
  /** The client's params that the `presence.params` option shares (a user id, a name), as JSON. */
  readonly params: Readonly<Record<string, unknown>>
  /** When the client entered the room (ms since the epoch). */
  readonly since: number
}

/**
 * Who is in the presence rooms on every node: what an adapter keeps for hubs with the `presence`
 * option. Each node writes its own members; a node that dies has its members removed within its
 * lease's life, and the store tells a live node (`HubNode.presenceLapsed`) so that the rooms hear
 * they left.
 */
export interface PresenceStore {
  /**
   * Adds a member of this node to a room's presence. Resolves once the other nodes can see it;
   * never rejects: a failed write is counted, and written again when the store is back.
   */
  enter (room: string, member: PresenceMember): Promise<void>
  /**
   * Removes a member this node added. Resolves true when the entry was this node's and is gone,
   * false when there was none or another node holds it now (the client resumed there); never rejects.
   */
  exit (room: string, clientId: string): Promise<boolean>
  /** Every member of a room on every live node. Rejects when the store cannot be read. */
  members (room: string): Promise<PresenceMember[]>
}
