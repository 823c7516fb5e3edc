// A tiny chat on the in-memory hub, with typed messages: the page sends `say` and `join` messages
// (checked against their schemas before a handler sees them) and gets `said`, `joined` and `left`
// events, replies to the messages that carry an `id`, and error frames for invalid ones.
// `PORT` picks the port; 0 picks any free one.
import Fastify from 'fastify'
import { readFile } from 'node:fs/promises'
import fastifyWsHub, { Type, defineRoute } from '../../dist/index.js'

const page = await readFile(new URL('./index.html', import.meta.url), 'utf8')
const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })
await app.register(fastifyWsHub)

app.get('/', (_request, reply) => reply.type('text/html; charset=utf-8').send(page))

/** A client is in one room at a time; it starts in the lobby. */
const roomOf = (client) => client.rooms.values().next().value ?? 'lobby'

const chatRoute = defineRoute({
  url: '/ws',
  schema: { querystring: Type.Object({ name: Type.String({ minLength: 1, maxLength: 32 }) }) },
  params: Type.Object({ name: Type.String() }),
  onUpgrade (request) {
    return { name: request.query.name }
  },
  messages: {
    say: Type.Object({ text: Type.String({ minLength: 1, maxLength: 500 }) }),
    join: Type.Object({ room: Type.String({ pattern: '^[a-z0-9-]{1,32}$' }) })
  },
  events: {
    said: Type.Object({ from: Type.String(), text: Type.String() }),
    joined: Type.Object({ name: Type.String(), room: Type.String(), online: Type.Integer() }),
    left: Type.Object({ name: Type.String(), online: Type.Integer() })
  },
  replies: {
    say: Type.Object({ echo: Type.String() }),
    join: Type.Object({ room: Type.String(), members: Type.Integer() })
  },
  handlers: {
    say (client, data) {
      client.hub.broadcastEvent('said', { from: client.params.name, text: data.text }, { room: roomOf(client), except: client })
      // the original Go example echoed every message to its sender; here that is the reply
      return { echo: `服务器已经收到了你的消息：${data.text}` }
    },
    join (client, data) {
      client.leave(roomOf(client))
      client.join(data.room)
      client.hub.broadcastEvent('joined', { name: client.params.name, room: data.room, online: client.hub.onlineCount() }, { room: data.room, except: client })
      return { room: data.room, members: client.hub.roomSize(data.room) }
    }
  },
  onOpen (client) {
    client.join('lobby')
    client.hub.broadcastEvent('joined', { name: client.params.name, room: 'lobby', online: client.hub.onlineCount() })
  },
  onClose (client) {
    client.hub.broadcastEvent('left', { name: client.params.name, online: client.hub.onlineCount() })
  }
})
app.hub.route(chatRoute)

const address = await app.listen({ port, host })
console.log(`fastify-ws-hub chat: open ${address}/ in a browser (Ctrl+C to stop)`)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => { app.close().then(() => process.exit(0)) })
}
