/**
 * The rooms of one client, as the client keeps them: most clients are in no room or in one, and a
 * `Set` for a single name costs about 150 bytes. So a client holds nothing for no room, the name
 * itself for one room, and a `Set` only from its second room on (or once `client.rooms` is asked
 * for, which hands out a live set).
 */
export type ClientRooms = Set<string> | string | undefined

/** Whatever holds a client's rooms. */
interface WithRooms {
  _rooms: ClientRooms
}

/** Whether the client is in the room. */
export function inRoom (holder: WithRooms, room: string): boolean {
  const rooms = holder._rooms
  return typeof rooms === 'string' ? rooms === room : rooms?.has(room) === true
}

/** Adds a room; false when the client was in it already. */
export function addRoom (holder: WithRooms, room: string): boolean {
  const rooms = holder._rooms
  if (rooms === undefined) {
    holder._rooms = room
    return true
  }
  if (typeof rooms === 'string') {
    if (rooms === room) return false
    holder._rooms = new Set([rooms, room])
    return true
  }
  if (rooms.has(room)) return false
  rooms.add(room)
  return true
}

/** Removes a room; false when the client was not in it. */
export function deleteRoom (holder: WithRooms, room: string): boolean {
  const rooms = holder._rooms
  if (typeof rooms !== 'string') return rooms?.delete(room) === true
  if (rooms !== room) return false
  holder._rooms = undefined
  return true
}

/** The client's rooms as a set, made once and kept (a live view of its rooms from then on); `undefined` for none. */
export function roomSet (holder: WithRooms): Set<string> | undefined {
  const rooms = holder._rooms
  if (typeof rooms !== 'string') return rooms
  const set = new Set<string>([rooms])
  holder._rooms = set
  return set
}

/** Takes every room from the client, and returns them. */
export function takeRooms (holder: WithRooms): readonly string[] {
  const rooms = holder._rooms
  holder._rooms = undefined
  if (rooms === undefined) return []
  if (typeof rooms === 'string') return [rooms]
  const taken = [...rooms]
  // A set handed out by `client.rooms` shows the client in no room from now on.
  rooms.clear()
  return taken
}
