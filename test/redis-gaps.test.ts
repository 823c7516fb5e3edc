import assert from 'node:assert/strict'
import { test } from 'node:test'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import { join, settle, startNode } from './adapter-contract.js'
import { createApp } from './helpers.js'
import { eventually, spawnScript, uniquePrefix, useRedis, useRedisServer, type RedisServer } from './redis-env.js'

/**
 * A publishing hub in a process of its own (so that this process can block its own event loop
 * while it publishes). Env: REDIS_URL, PREFIX. Prints { nodeId } when ready; on the stdin line
 * `go` it broadcasts 3 KB messages (20 per event-loop turn) until the line `stop`, then prints
 * { published, dropped } once Redis has answered for every one.
 */
const publisherScript = `
import Fastify from 'fastify'
import { createInterface } from 'node:readline'
import fastifyWsHub from './dist/index.js'
import { redisAdapter } from './dist/adapters/redis/index.js'

const app = Fastify()
await app.register(fastifyWsHub, { heartbeat: false, adapter: redisAdapter({ url: process.env.REDIS_URL, prefix: process.env.PREFIX }) })
await app.ready()
const payload = 'x'.repeat(3000)
let publishing = false
let attempted = 0
function burst () {
  if (!publishing) return
  for (let i = 0; i < 20; i++, attempted++) app.hub.broadcast(payload)
  setImmediate(burst)
}
createInterface({ input: process.stdin }).on('line', async (line) => {
  if (line === 'go') {
    publishing = true
    burst()
  } else if (line === 'stop') {
    publishing = false
    // A trickle for a second after the burst: envelopes lost at the very end of it (the receiver
    // cut off again just before the stop) show as a gap only when a later one arrives.
    for (let i = 0; i < 20; i++, attempted++) {
      await new Promise(resolve => setTimeout(resolve, 50))
      app.hub.broadcast(payload)
    }
    const stats = () => app.hub.stats()
    while (stats()['adapter.published'] + stats()['adapter.dropped'] < attempted) await new Promise(resolve => setTimeout(resolve, 10))
    process.stdout.write(JSON.stringify({ published: stats()['adapter.published'], dropped: stats()['adapter.dropped'] }) + '\\n')
    await app.close()
  }
})
process.stdout.write(JSON.stringify({ nodeId: app.hub.nodeId }) + '\\n')
`

test('a node that falls behind and is cut off by Redis counts the envelopes it lost and logs it once', async (t) => {
  // A Redis of the test's own, which cuts a subscriber at 128 KiB of output waiting for it.
  const server = await useRedisServer(t, undefined, ['--client-output-buffer-limit', 'pubsub 128kb 0 0']) as RedisServer | undefined
  if (server === undefined) return
  const prefix = uniquePrefix()
  const warnings: Array<{ msg: string, lost: number, publishers: Record<string, number> }> = []
  const stream = {
    write (line: string) {
      const entry = JSON.parse(line) as { level: number, msg: string, lost: number, publishers: Record<string, number> }
      if (entry.level === 40 && entry.msg.includes('never arrived')) warnings.push(entry)
    }
  }
  // maxDeliveryDelay off: what arrives late here must count as received, so that received + lost adds up.
  const receiver = await createApp(t, { adapter: redisAdapter({ url: server.url, prefix, maxDeliveryDelay: 0 }) }, { logger: { level: 'warn', stream } })
  await receiver.ready()
  const stats = (): Record<string, number> => receiver.hub.stats() as unknown as Record<string, number>
  const stat = (name: string): number => stats()[`adapter.${name}`] ?? Number.NaN
  const publisher = spawnScript(t, publisherScript, { REDIS_URL: server.url, PREFIX: prefix }, 'pipe')
  const { nodeId } = await publisher.nextLine<{ nodeId: string }>()

  publisher.child.stdin!.write('go\n')
  await eventually(() => stat('received') > 100, 5000, 'the flow to start')
  // Busy for a second: Redis's output buffer for this node's subscription passes its limit.
  const busyUntil = Date.now() + 1000
  while (Date.now() < busyUntil) { /* this node falls behind */ }
  await eventually(() => stat('gaps') > 0, 10_000, 'the gap to be seen after the resubscription')
  publisher.child.stdin!.write('stop\n')
  const { published } = await publisher.nextLine<{ published: number }>()
  await eventually(() => stat('received') + stat('lost') === published, 5000, `received + lost to add up to published (${published})`)
    .catch((error: Error) => { throw new Error(`${error.message}: received ${stat('received')}, lost ${stat('lost')}, gaps ${stat('gaps')}`) })
  const [received, lost, gaps] = [stat('received'), stat('lost'), stat('gaps')]
  t.diagnostic(`published ${published}, received ${received}, lost ${lost} in ${gaps} gap(s)`)
  assert.ok(lost > 0)
  assert.equal(received + lost, published)

  // One warning for the episode, naming the publisher and what it lost; none per envelope or per gap.
  await eventually(() => warnings.length > 0, 3000, 'the warning')
  await new Promise(resolve => setTimeout(resolve, 1500))
  assert.equal(warnings.length, 1)
  const [warning] = warnings as [typeof warnings[number]]
  assert.ok(warning.msg.includes(`node ${nodeId}`), warning.msg)
  assert.ok(warning.lost > 0 && warning.lost <= lost)
  assert.deepEqual(Object.keys(warning.publishers), [nodeId])
})

test('a receiver forgets a publisher once its lease is gone: its memory does not grow with every node that ever published', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const a = await startNode(t, redisAdapter({ url, prefix }))
  const b = await startNode(t, redisAdapter({ url, prefix, leaseTtl: 300 }))
  const b1 = await join(b)
  await settle(a, [b1])
  assert.equal(b.app.hub.stats()['adapter.publishers'], 1)
  await a.app.close()
  await eventually(() => b.app.hub.stats()['adapter.publishers'] === 0, 2000, 'node a to be forgotten')
})
