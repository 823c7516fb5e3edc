// Starts two hubs on Redis (ports 3001 and 3002, or PORT_A / PORT_B), shows a message broadcast on
// one reaching a client of the other, and keeps both running until Ctrl-C.
// Needs a Redis at REDIS_URL (default redis://127.0.0.1:6379). Run: npm run example:cluster
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'

const script = fileURLToPath(new URL('./node.js', import.meta.url))
const ports = [Number(process.env.PORT_A ?? 3001), Number(process.env.PORT_B ?? 3002)]

const nodes = ports.map((port, i) => fork(script, {
  env: { ...process.env, PORT: String(port), NODE_NAME: i === 0 ? 'a' : 'b' }
}))
await Promise.all(nodes.map(node => once(node, 'message')))
for (const port of ports) console.log(`hub listening: http://127.0.0.1:${port}/  (websocket ws://127.0.0.1:${port}/ws)`)

// The demonstration: a client of node b hears what a client of node a says.
const listener = new WebSocket(`ws://127.0.0.1:${ports[1]}/ws`)
const speaker = new WebSocket(`ws://127.0.0.1:${ports[0]}/ws`)
await Promise.all([once(listener, 'open'), once(speaker, 'open')])
const heard = new Promise(resolve => {
  listener.on('message', data => { if (String(data).startsWith('[via')) resolve(String(data)) })
})
speaker.send('hello from a client of node a')
console.log(`a client of node b received: ${await heard}`)
listener.close()
speaker.close()
console.log('open both URLs in a browser to chat across the nodes; Ctrl-C stops everything')

let stopping = false
async function stop () {
  if (stopping) return
  stopping = true
  await Promise.all(nodes.map(async node => {
    if (node.exitCode !== null) return
    const exited = once(node, 'exit')
    node.kill('SIGTERM')
    await exited
  }))
  console.log('both hubs stopped')
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
