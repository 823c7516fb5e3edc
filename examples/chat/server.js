// The chat demo: `npm start`, then open the printed URL in two tabs. `PORT` picks the port (0: any
// free one), `HOST` the interface. With `REDIS_URL` set, every server started with the same Redis is
// one chat: `PORT=3001 REDIS_URL=redis://127.0.0.1:6379 npm start` beside another on 3002.
import { buildChat } from './app.js'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'
const redisUrl = process.env.REDIS_URL || undefined

const app = await buildChat({ redisUrl, logger: { level: process.env.LOG_LEVEL ?? 'info' } })
const address = await app.listen({ port, host })
const cluster = redisUrl === undefined ? '' : ` (one chat with every server on ${redisUrl})`
console.log(`fastify-ws-hub chat: open ${address}/ in a browser${cluster} (Ctrl+C to stop)`)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => { app.close().then(() => process.exit(0)) })
}
