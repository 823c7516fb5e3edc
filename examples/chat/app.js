// The chat as a Fastify app, without listening: server.js starts it, the browser tests build their
// own on port 0 and reach into `app.hub` (to cut a page's socket, say).
//
// Typed messages, all checked against their schemas before a handler sees them:
//   page -> server   join {room} (a request: the reply carries the room's online count and its
//                    members, from hub.presence), leave {room}, say {room, text}
//   server -> page   said {room, from, text, at}, member {room, name, change} when someone joins or
//                    leaves, online {room, count}: the room's size across the cluster; and the hub's
//                    own presence events $join / $leave {room, id, params: {name}}, which keep each
//                    page's member list live
import Fastify from 'fastify'
import fastifyStatic from '@fastify/static'
import { fileURLToPath } from 'node:url'
import fastifyWsHub, { Type, defineRoute } from '../../dist/index.js'
import { redisAdapter } from '../../dist/adapters/redis/index.js'

const Room = Type.String({ pattern: '^[a-z0-9-]{1,32}$' })

/**
 * Builds the chat app. With `redisUrl`, hubs sharing that Redis and `prefix` are one chat: a message
 * said on one reaches the room's pages on all of them, and the online counts add up every node.
 * @param {{ redisUrl?: string, prefix?: string, logger?: object | boolean, recountDelay?: number }} [options]
 */
export async function buildChat ({ redisUrl, prefix = 'fastify-ws-hub-chat', logger = false, recountDelay = 1000 } = {}) {
  const app = Fastify({ logger })
  await app.register(fastifyWsHub, {
    adapter: redisUrl === undefined ? undefined : redisAdapter({ url: redisUrl, prefix }),
    // every room of the chat has presence; a member shows its nickname (client.params.name)
    presence: { rooms: () => true, params: ['name'] }
  })
  // No build step: the page, its script and the client library are files served as they are. The
  // client module comes from the package's own build (dist/client/), as an application would serve it.
  await app.register(fastifyStatic, { root: fileURLToPath(new URL('./public/', import.meta.url)) })
  await app.register(fastifyStatic, {
    root: fileURLToPath(new URL('../../dist/client/', import.meta.url)),
    prefix: '/client/',
    decorateReply: false
  })

  // The hub forgets a client's rooms as its socket closes, before onClose runs; the chat keeps its
  // own copy to tell those rooms that someone left.
  const roomsOf = new WeakMap()
  // Counts from other nodes arrive through their Redis leases, written up to ~250 ms after a change,
  // so a count taken at once may miss a join elsewhere: each change is counted again a little later.
  const recounts = new Map()

  let closing = false

  /** Pushes a room's cluster-wide online count to the room's pages on every node. */
  async function announceCount (room) {
    const count = await app.hub.clusterRoomSize(room)
    app.hub.broadcastEvent('online', { room, count }, { room })
  }

  function roomChanged (room) {
    // the app shutting down closes every client: nobody is left to tell
    if (closing) return
    // Redis unreachable: the pages keep the count they have; the next change corrects it
    const warn = (error) => app.log.warn({ err: error, room }, 'chat: no online count for the room')
    announceCount(room).catch(warn)
    if (redisUrl === undefined) return
    clearTimeout(recounts.get(room))
    const timer = setTimeout(() => {
      recounts.delete(room)
      announceCount(room).catch(warn)
    }, recountDelay)
    timer.unref()
    recounts.set(room, timer)
  }

  function enter (client, room) {
    const rooms = roomsOf.get(client)
    if (rooms.has(room)) return
    rooms.add(room)
    client.join(room)
    client.hub.broadcastEvent('member', { room, name: client.params.name, change: 'joined' }, { room, except: client })
    roomChanged(room)
  }

  function exit (client, room) {
    const rooms = roomsOf.get(client)
    if (!rooms.delete(room)) return
    client.leave(room)
    client.hub.broadcastEvent('member', { room, name: client.params.name, change: 'left' }, { room })
    roomChanged(room)
  }

  const chatRoute = defineRoute({
    url: '/ws',
    // the nickname comes in the query string: /ws?name=alice
    schema: { querystring: Type.Object({ name: Type.String({ minLength: 1, maxLength: 32 }) }) },
    params: Type.Object({ name: Type.String() }),
    onUpgrade (request) {
      return { name: request.query.name.trim() || 'anonymous' }
    },
    messages: {
      join: Type.Object({ room: Room }),
      leave: Type.Object({ room: Room }),
      say: Type.Object({ room: Room, text: Type.String({ minLength: 1, maxLength: 500 }) })
    },
    events: {
      said: Type.Object({ room: Type.String(), from: Type.String(), text: Type.String(), at: Type.Number() }),
      member: Type.Object({ room: Type.String(), name: Type.String(), change: Type.Union([Type.Literal('joined'), Type.Literal('left')]) }),
      online: Type.Object({ room: Type.String(), count: Type.Integer() })
    },
    replies: {
      join: Type.Object({
        room: Type.String(),
        online: Type.Integer(),
        // the page's own id, so that it finds itself in the list
        you: Type.String(),
        members: Type.Array(Type.Object({ id: Type.String(), name: Type.String() }))
      })
    },
    handlers: {
      async join (client, { room }) {
        enter(client, room)
        const [online, members] = await Promise.all([
          client.hub.clusterRoomSize(room).catch(() => client.hub.roomSize(room)),
          // Redis unreachable: the page starts from itself, and $join events fill the list in
          client.hub.presence(room).catch(() => [])
        ])
        return { room, online, you: client.id, members: members.map(({ id, params }) => ({ id, name: String(params.name) })) }
      },
      leave (client, { room }) {
        exit(client, room)
      },
      say (client, { room, text }) {
        // A page's messages wait in its client while it reconnects and are sent as soon as the new
        // socket opens, possibly ahead of the page joining its rooms again: saying something in a
        // room takes the speaker into it, so no message is lost that way.
        enter(client, room)
        // to the whole room, the speaker included: its own line appears when the server has it
        client.hub.broadcastEvent('said', { room, from: client.params.name, text, at: Date.now() }, { room })
      }
    },
    onOpen (client) {
      roomsOf.set(client, new Set())
    },
    onClose (client) {
      for (const room of roomsOf.get(client) ?? []) {
        client.hub.broadcastEvent('member', { room, name: client.params.name, change: 'left' }, { room })
        roomChanged(room)
      }
    }
  })
  app.hub.route(chatRoute)

  app.addHook('preClose', async () => {
    closing = true
    for (const timer of recounts.values()) clearTimeout(timer)
  })
  return app
}
