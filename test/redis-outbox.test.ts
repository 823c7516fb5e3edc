import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { Redis } from 'ioredis'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import { join, startNode, type NodeClient, type TestNode } from './adapter-contract.js'
import { eventually, uniquePrefix, useRedis } from './redis-env.js'

// When a node's publishes leave: at the end of their callback while Redis has none of the node's
// commands to answer (latency: nothing else of the loop turn runs first), at the end of the loop
// turn while some are in flight (one pipeline for the publishes of many callbacks).

/** The user's client handed to the adapter, with its PUBLISH and pipelines counted. */
function countedClient (url: string): { redis: Redis, publishes: () => number, pipelines: number[] } {
  const redis = new Redis(url)
  redis.on('error', () => {})
  let publishes = 0
  const pipelines: number[] = []
  const publish = redis.publish.bind(redis)
  redis.publish = ((...args: Parameters<Redis['publish']>) => {
    publishes++
    return publish(...args)
  }) as Redis['publish']
  const pipeline = redis.pipeline.bind(redis)
  redis.pipeline = ((...args: Parameters<Redis['pipeline']>) => {
    const made = pipeline(...args)
    const exec = made.exec.bind(made)
    made.exec = ((...more: Parameters<typeof made.exec>) => {
      pipelines.push(made.length)
      return exec(...more)
    }) as typeof made.exec
    return made
  }) as Redis['pipeline']
  return { redis, publishes: () => publishes, pipelines }
}

/** Node a (on the counted client) and a client of node b, once a has nothing in flight; undefined without Redis. */
async function publisherAndReceiver (t: TestContext): Promise<{ counted: ReturnType<typeof countedClient>, a: TestNode, remote: NodeClient } | undefined> {
  const url = await useRedis(t)
  if (url === undefined) return undefined
  const prefix = uniquePrefix()
  const counted = countedClient(url)
  t.after(() => counted.redis.disconnect())
  const a = await startNode(t, redisAdapter({ client: counted.redis, prefix }))
  const b = await startNode(t, redisAdapter({ url, prefix }))
  const remote = await join(b)
  await eventually(() => pendingBytes(a) === 0, 3000, 'node a to have nothing in flight')
  return { counted, a, remote }
}

function pendingBytes (node: TestNode): number {
  return node.app.hub.stats()['adapter.pendingBytes'] ?? 0
}

test('a broadcast made while Redis is idle is published at the end of its callback, before the other callbacks of the loop turn', async (t) => {
  const setup = await publisherAndReceiver(t)
  if (setup === undefined) return
  const { counted, a, remote } = setup

  const before = counted.publishes()
  let publishedFirst: boolean | undefined
  // Queued ahead of the broadcast: it runs before a publish that waits for the end of the turn.
  setImmediate(() => { publishedFirst = counted.publishes() > before })
  a.app.hub.broadcast('at once')
  await eventually(() => remote.data().includes('at once'), 3000, 'the broadcast on node b')
  assert.equal(publishedFirst, true)
})

test('while a publish is in flight, the broadcasts of several callbacks of one loop turn share one pipeline, in order', async (t) => {
  const setup = await publisherAndReceiver(t)
  if (setup === undefined) return
  const { counted, a, remote } = setup

  // Redis holds the first PUBLISH's answer until the gate opens: the node has a command in flight.
  let open = (): void => {}
  const gate = new Promise<void>(resolve => { open = resolve })
  const publish = counted.redis.publish.bind(counted.redis)
  counted.redis.publish = ((...args: Parameters<Redis['publish']>) => {
    const sent = publish(...args)
    return gate.then(() => sent)
  }) as Redis['publish']
  a.app.hub.broadcast('first')
  await eventually(() => pendingBytes(a) > 0, 3000, 'the first publish in flight')
  const pipelinesBefore = counted.pipelines.length
  await new Promise<void>(resolve => {
    setImmediate(() => { a.app.hub.broadcast('second') })
    setImmediate(() => { a.app.hub.broadcast('third') })
    setImmediate(resolve)
  })
  await eventually(() => counted.pipelines.length > pipelinesBefore, 3000, 'a pipeline')
  assert.deepEqual(counted.pipelines.slice(pipelinesBefore), [2])
  open()
  await eventually(() => remote.data().includes('third'), 3000, 'the broadcasts on node b')
  assert.deepEqual(remote.data(), ['first', 'second', 'third'])
})

test('a broadcast is handed to Redis ahead of the frames to the node\'s own clients', async (t) => {
  const setup = await publisherAndReceiver(t)
  if (setup === undefined) return
  const { counted, a } = setup
  const local = await join(a)
  const socket = a.app.hub.clients.get(local.id)?.socket
  assert.ok(socket !== undefined)

  // The local frame is still in the socket's buffer (corked until the turn's writes end) when the publish goes.
  let localFrameWaiting: boolean | undefined
  const publish = counted.redis.publish.bind(counted.redis)
  counted.redis.publish = ((...args: Parameters<Redis['publish']>) => {
    localFrameWaiting = socket.bufferedAmount > 0
    return publish(...args)
  }) as Redis['publish']
  a.app.hub.broadcast('both ways')
  await eventually(() => local.data().includes('both ways'), 3000, 'the broadcast on the local client')
  assert.equal(localFrameWaiting, true)
})
