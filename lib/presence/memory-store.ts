import type { PresenceMember, PresenceStore } from './store.ts'

/**
 * Presence of the hubs of one memory bus, kept in the process: a map per room of its members on
 * every hub of the bus. Hubs of one process do not die apart from it, so nothing here lapses: a
 * hub that closes has closed its clients first, and each has left.
 */
export class MemoryPresence {
  readonly #rooms = new Map<string, Map<string, PresenceMember>>()

  /** The store as one node of the bus uses it. */
  forNode (nodeId: () => string | undefined): PresenceStore {
    const rooms = this.#rooms
    return {
      async enter (room: string, member: PresenceMember): Promise<void> {
        let members = rooms.get(room)
        if (members === undefined) rooms.set(room, members = new Map())
        members.set(member.id, member)
      },
      async exit (room: string, clientId: string): Promise<boolean> {
        const members = rooms.get(room)
        // The client may have resumed on another hub of the bus, which entered it since: not ours to remove.
        if (members === undefined || members.get(clientId)?.nodeId !== nodeId()) return false
        members.delete(clientId)
        if (members.size === 0) rooms.delete(room)
        return true
      },
      async members (room: string): Promise<PresenceMember[]> {
        return [...rooms.get(room)?.values() ?? []]
      }
    }
  }
}
