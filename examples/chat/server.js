// A tiny chat on the in-memory hub: every message is echoed to its sender (as the original Go
// example did) and broadcast to everyone else. `PORT` picks the port; 0 picks any free one.
import Fastify from 'fastify'
import { readFile } from 'node:fs/promises'
import fastifyWsHub, { Type } from '../../dist/index.js'

const page = await readFile(new URL('./index.html', import.meta.url), 'utf8')
const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })
await app.register(fastifyWsHub)

app.get('/', (_request, reply) => reply.type('text/html; charset=utf-8').send(page))

app.hub.route({
  url: '/ws',
  schema: { querystring: Type.Object({ name: Type.String({ minLength: 1, maxLength: 32 }) }) },
  params: Type.Object({ name: Type.String() }),
  onUpgrade (request) {
    return { name: request.query.name }
  },
  onOpen (client) {
    client.join('chat')
    client.hub.broadcast({ type: 'joined', name: client.params.name, online: client.hub.onlineCount() }, { room: 'chat' })
  },
  onMessage (client, data) {
    if (typeof data !== 'string' || data.length > 1000) {
      client.send({ type: 'error', message: 'send text of at most 1000 characters' })
      return
    }
    client.send({ type: 'echo', text: `服务器已经收到了你的消息：${data}` })
    client.hub.broadcast({ type: 'message', name: client.params.name, text: data }, { room: 'chat', except: client })
  },
  onClose (client) {
    client.hub.broadcast({ type: 'left', name: client.params.name, online: client.hub.onlineCount() }, { room: 'chat' })
  }
})

const address = await app.listen({ port, host })
console.log(`fastify-ws-hub chat: open ${address}/ in a browser (Ctrl+C to stop)`)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => { app.close().then(() => process.exit(0)) })
}
