// The clients of the room benches (rooms.js, cluster-throughput.js), all in the driver's process:
// `ws` clients (no permessage-deflate), each in one room of one node, that speak either the hub's
// plain frames or socket.io's engine.io/socket.io text protocol written by hand over the websocket
// transport (so that every system's clients are the same light `ws` clients); and the checks that
// every client is registered and reached by cross-node broadcasts before a run.
import { roomName } from './room-node.js'
import { until } from './wait.js'

/**
 * @typedef {object} RoomClient
 * @property {number} node the index of the node it is connected to
 * @property {number} room
 * @property {number} probed the last probe round counted for it (-1: none)
 * @property {boolean} open
 */

/**
 * @typedef {object} ClientSink what the clients share with the bench's own sink
 * @property {number} probeRound the probe round under way (0: none)
 * @property {number[] | null} probeGot per room, its members that got this round's probe
 * @property {number} disconnected clients that a server closed (none should be)
 * @property {boolean} closing set once the bench closes the clients itself
 */

/**
 * Rooms of every node: room i lives on node i % nodes (all of its members are that node's clients).
 * @param {number} nodes
 * @param {number} rooms
 * @returns {number[][]}
 */
export function roomsByNode (nodes, rooms) {
  const owned = Array.from({ length: nodes }, () => [])
  for (let i = 0; i < rooms; i++) owned[i % nodes].push(i)
  return owned
}

/**
 * Counts a readiness probe `p <round> <room>` once per client and round, for the client's own room
 * only (a probe in another room would be a routing fault, which the probes must not hide).
 * @param {ClientSink} sink
 * @param {RoomClient} client
 * @param {string} text
 */
export function countProbe (sink, client, text) {
  const [, round, room] = text.split(' ')
  if (Number(round) === sink.probeRound && client.probed !== sink.probeRound) {
    client.probed = sink.probeRound
    if (Number(room) === client.room) sink.probeGot[client.room]++
  }
}

/**
 * Opens `count` clients of one node, 50 upgrades in flight at a time; client j is in room
 * `rooms[j % rooms.length]`. A client that does not open within 20 s counts as failed.
 * @returns {Promise<{ sockets: Array<{ socket: import('ws').WebSocket, client: RoomClient }>, failed: number }>}
 */
async function openNodeClients ({ WebSocket, port, node, rooms, count, socketIo, sink, onPayload }) {
  const sockets = []
  let failed = 0
  for (let i = 0; i < count; i += 50) {
    const batch = []
    for (let j = i; j < Math.min(count, i + 50); j++) {
      const room = rooms[j % rooms.length]
      const client = { node, room, probed: -1, open: false }
      const url = socketIo
        ? `ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket&room=${roomName(room)}`
        : `ws://127.0.0.1:${port}/ws?room=${roomName(room)}`
      const socket = new WebSocket(url, { perMessageDeflate: false })
      batch.push(new Promise((resolve) => {
        const timer = setTimeout(() => done(false), 20_000)
        let settled = false
        function done (ok) {
          if (settled) return
          settled = true
          client.open = ok
          clearTimeout(timer)
          if (!ok) socket.terminate()
          resolve(ok ? { socket, client } : undefined)
        }
        socket.on('error', () => done(false))
        socket.on('close', () => {
          if (client.open && !sink.closing) sink.disconnected++
          done(false)
        })
        if (!socketIo) {
          socket.on('open', () => done(true))
          socket.on('message', (data) => onPayload(client, data))
          return
        }
        // engine.io/socket.io by hand: "0{...}" open -> "40" connect; "40{...}" connected;
        // "2" ping -> "3" pong; `42["m","<payload>"]` an event (the payloads need no JSON escapes).
        socket.on('message', (data) => {
          const text = data.toString()
          if (text.startsWith('42')) onPayload(client, text.slice(8, -2))
          else if (text.startsWith('40')) done(true)
          else if (text.charCodeAt(0) === 48) socket.send('40')
          else if (text === '2') socket.send('3')
        })
      }))
    }
    for (const opened of await Promise.all(batch)) {
      if (opened === undefined) failed++
      else sockets.push(opened)
    }
  }
  return { sockets, failed }
}

/**
 * Probes every room from another node until every member has one (at most 10 rounds): the
 * cross-node subscriptions are then in place, and the run does not measure their set-up.
 * @param {Array<{ call: (cmd: string, args: object) => Promise<unknown> }>} nodes
 * @param {number[]} members per room
 * @param {ClientSink} sink
 * @returns {Promise<number[]>} the rooms still not reached
 */
export async function probeRooms (nodes, members, sink) {
  let pending = members.map((size, room) => size > 0 ? room : -1).filter((room) => room >= 0)
  for (let round = 1; round <= 10 && pending.length > 0; round++) {
    sink.probeRound = round
    sink.probeGot = new Array(members.length).fill(0)
    const from = nodes.map(() => [])
    for (const room of pending) from[(room % nodes.length + 1) % nodes.length].push(room)
    await Promise.all(nodes.map((node, i) => node.call('probe', { rooms: from[i], round })))
    const check = pending
    await until(() => check.every((room) => sink.probeGot[room] >= members[room]), 2000, 20)
    pending = check.filter((room) => sink.probeGot[room] < members[room])
  }
  sink.probeRound = 0
  return pending
}

/**
 * Connects `perNode` clients to every node, in the node's own rooms, then waits (up to 30 s) until
 * every node counts them all as members of their rooms, then probes every room across nodes.
 * Problems are told to `warn` as they are found, and the run goes on: a bench reports them.
 * @param {object} options
 * @param {typeof import('ws').WebSocket} options.WebSocket
 * @param {Array<{ port: number, call: (cmd: string, args: object) => Promise<any> }>} options.nodes answering `count` and `probe` (room-node.js)
 * @param {number[][]} options.owned the rooms of every node (roomsByNode)
 * @param {number} options.rooms how many rooms there are in all
 * @param {number} options.perNode clients per node
 * @param {boolean} [options.socketIo] socket.io clients, not plain ws ones
 * @param {ClientSink} options.sink
 * @param {(client: RoomClient, payload: Buffer | string) => void} options.onPayload every payload a client
 *   gets: a frame's data (ws), or the string argument of an event (socket.io)
 * @param {import('ws').WebSocket[]} options.sockets every open client is added here as soon as it opens
 *   (so that the caller can close them all, even after a failure)
 * @param {(problem: string) => void} options.warn
 * @returns {Promise<{ members: number[], failed: number, perNodeClients: number[], unreached: number[] }>}
 *   members per room, clients that failed to open, clients per node, rooms never reached by a probe
 */
export async function connectRoomClients ({ WebSocket, nodes, owned, rooms, perNode, socketIo = false, sink, onPayload, sockets, warn }) {
  const members = new Array(rooms).fill(0)
  let failed = 0
  for (let k = 0; k < nodes.length; k++) {
    const opened = await openNodeClients({ WebSocket, port: nodes[k].port, node: k, rooms: owned[k], count: perNode, socketIo, sink, onPayload })
    failed += opened.failed
    for (const { socket, client } of opened.sockets) {
      sockets.push(socket)
      members[client.room]++
    }
  }
  if (failed > 0) warn(`${failed} of ${nodes.length * perNode} clients failed to open`)
  const perNodeClients = owned.map((mine) => mine.reduce((sum, room) => sum + members[room], 0))
  const registered = await until(async () => {
    const counts = await Promise.all(nodes.map((node, k) => node.call('count', { rooms: owned[k] })))
    return counts.every((count, k) => count.clients === perNodeClients[k] && count.members === perNodeClients[k])
  }, 30_000, 100)
  if (!registered) warn('not every client was registered in its room within 30 s')
  const unreached = await probeRooms(nodes, members, sink)
  if (unreached.length > 0) warn(`${unreached.length} room(s) never got a cross-node probe: ${unreached.slice(0, 10).map(roomName).join(', ')}`)
  return { members, failed, perNodeClients, unreached }
}
