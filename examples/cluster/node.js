// One hub of the cluster example: started by start.js (child_process.fork), or alone with
// PORT=3001 NODE_NAME=a node examples/cluster/node.js. Open http://127.0.0.1:PORT/ in a browser:
// what you type there is broadcast to the clients of every node.
import Fastify from 'fastify'
import fastifyWsHub from '../../dist/index.js'
import { redisAdapter } from '../../dist/adapters/redis/index.js'

const port = Number(process.env.PORT ?? 3001)
const name = process.env.NODE_NAME ?? `node-${port}`

const page = `<!doctype html><meta charset="utf-8"><title>hub ${name}</title>
<h1>fastify-ws-hub cluster: node ${name}</h1>
<form><input autofocus placeholder="say something to every node"> <button>send</button></form>
<pre></pre>
<script>
  const out = document.querySelector('pre')
  const input = document.querySelector('input')
  const socket = new WebSocket('ws://' + location.host + '/ws')
  socket.onmessage = (event) => { out.textContent += event.data + '\\n' }
  document.querySelector('form').onsubmit = (event) => { event.preventDefault(); socket.send(input.value); input.value = '' }
</script>`

const app = Fastify({ logger: { level: 'warn' } })
await app.register(fastifyWsHub, {
  handshakeMessage: `connected to node ${name}`,
  adapter: redisAdapter({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', prefix: 'fastify-ws-hub-example' })
})

app.get('/', (_request, reply) => reply.type('text/html').send(page))
app.get('/count', async () => ({ node: name, here: app.hub.onlineCount(), cluster: await app.hub.clusterCount() }))

app.hub.route({
  url: '/ws',
  onMessage (client, data) {
    // Local clients get it at once; the Redis adapter carries it to the clients of the other nodes.
    client.hub.broadcast(`[via node ${name}] ${data}`)
  }
})

await app.listen({ port, host: '127.0.0.1' })
process.send?.({ ready: true, port, name })

async function stop () {
  await app.close()
  process.exit(0)
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
// When start.js goes away, so does this node.
process.once('disconnect', stop)
