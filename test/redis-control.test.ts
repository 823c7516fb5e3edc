import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import { CONTROL_ROUTE, controlNode } from './control-env.js'
import { disconnectAcrossNodes, fetchAcrossNodes, joinAndLeaveAcrossNodes, nodeMessagesAcrossNodes, userClient } from './control-scenarios.js'
import { connect, waitFor, waitForAsync } from './helpers.js'
import { eventually, rawClient, spawnHub, uniquePrefix, useRedis, useRedisServer } from './redis-env.js'

const dist = new URL('../dist/', import.meta.url)

/** A node with the control route in a process of its own, to kill or stop. Env: REDIS_URL, PREFIX. Prints { port, nodeId }. */
const childScript = `
import Fastify from 'fastify'
import fastifyWsHub from '${new URL('index.js', dist).href}'
import { redisAdapter } from '${new URL('adapters/redis/index.js', dist).href}'

const app = Fastify()
await app.register(fastifyWsHub, { heartbeat: false, handshakeMessage: false, adapter: redisAdapter({ url: process.env.REDIS_URL, prefix: process.env.PREFIX }) })
app.hub.route(${CONTROL_ROUTE})
await app.listen({ port: 0, host: '127.0.0.1' })
process.stdout.write(JSON.stringify({ port: app.server.address().port, nodeId: app.hub.nodeId }) + '\\n')
`

/** Adapters of one cluster on the test's Redis, with a prefix of its own. */
async function onRedis (t: TestContext): Promise<(() => ReturnType<typeof redisAdapter>) | undefined> {
  const url = await useRedis(t)
  if (url === undefined) return undefined
  const prefix = uniquePrefix()
  return () => redisAdapter({ url, prefix })
}

test('fetchClients lists the clients of both nodes, or of a room (Redis)', async (t) => {
  const makeAdapter = await onRedis(t)
  if (makeAdapter !== undefined) await fetchAcrossNodes(t, makeAdapter)
})

test('join and leave act on a client or a room\'s members on both nodes (Redis)', async (t) => {
  const makeAdapter = await onRedis(t)
  if (makeAdapter !== undefined) await joinAndLeaveAcrossNodes(t, makeAdapter)
})

test('disconnect closes a client or a room\'s members on both nodes, after a broadcast sent before it (Redis)', async (t) => {
  const makeAdapter = await onRedis(t)
  if (makeAdapter !== undefined) await disconnectAcrossNodes(t, makeAdapter)
})

test('emitToNodes reaches the other nodes\' onNodeMessage handlers in order, not its own (Redis)', async (t) => {
  const makeAdapter = await onRedis(t)
  if (makeAdapter !== undefined) await nodeMessagesAcrossNodes(t, makeAdapter)
})

/** A node of this process and one in a child process, with a client each in room red. */
async function withChild (t: TestContext, controlTimeout: number) {
  const url = await useRedis(t)
  if (url === undefined) return undefined
  const prefix = uniquePrefix()
  const local = await controlNode(t, { adapter: redisAdapter({ url, prefix }), controlTimeout })
  await userClient(local, 'ann', 'red')
  const { child, nodeId, url: childUrl } = await spawnHub(t, childScript, { REDIS_URL: url, PREFIX: prefix })
  const remote = await connect(`${childUrl}/ws?user=cid&room=red`)
  await remote.received(1)
  const clients = await local.app.hub.fetchClients()
  assert.deepEqual(clients.map(info => info.nodeId).sort(), [local.app.hub.nodeId, nodeId].sort())
  const remoteId = clients.find(info => info.nodeId === nodeId)?.id as string
  return { local, child, nodeId, remote, remoteId, prefix, url }
}

test('a node that hangs (SIGSTOP): fetchClients, join and disconnect reject after controlTimeout with what the others gave; it answers again once it runs', async (t) => {
  const cluster = await withChild(t, 300)
  if (cluster === undefined) return
  const { local, child, remote, remoteId } = cluster
  child.kill('SIGSTOP')
  t.after(() => child.kill('SIGCONT'))
  await assert.rejects(local.app.hub.fetchClients(), (error: Error & { code?: string, missing?: number, answered?: string[], partial?: Array<{ params: unknown }> }) => {
    assert.equal(error.code, 'FST_WS_HUB_NODES_TIMEOUT')
    assert.equal(error.missing, 1)
    assert.deepEqual(error.answered, [local.app.hub.nodeId])
    assert.deepEqual(error.partial?.map(info => info.params), [{ user: 'ann' }])
    return true
  })
  await assert.rejects(local.app.hub.fetchClients({ room: 'red' }), /1 node\(s\) did not answer within 300 ms/)
  await assert.rejects(local.app.hub.join(remoteId, 'blue'), (error: Error & { partial?: unknown }) => error.partial === 0)
  await assert.rejects(local.app.hub.disconnect({ room: 'red' }, 4000), (error: Error & { partial?: unknown }) => error.partial === 1)
  child.kill('SIGCONT')
  // The stopped node acts on what it was asked once it runs again (its answer comes too late to count).
  assert.deepEqual(await remote.closed, { code: 4000, reason: '' })
  assert.deepEqual((await local.app.hub.fetchClients()).map(info => info.params), [])
})

test('a node killed (SIGKILL) is not waited for: once Redis drops its subscriptions, fetchClients answers at once without it', async (t) => {
  const cluster = await withChild(t, 5000)
  if (cluster === undefined) return
  const { local, child, prefix, url } = cluster
  child.kill('SIGKILL')
  await new Promise(resolve => child.once('exit', resolve))
  // Redis sees the dead process's sockets close: its subscriptions go with them.
  const redis = rawClient(t, url)
  await eventually(async () => (await redis.pubsub('NUMSUB', `${prefix}:db0:all`))[1] === 1, 5000, 'the dead node\'s subscription to be dropped')
  const started = Date.now()
  assert.deepEqual((await local.app.hub.fetchClients()).map(info => info.params), [{ user: 'ann' }])
  assert.equal(await local.app.hub.disconnect({ room: 'red' }), 1)
  assert.ok(Date.now() - started < 2500, 'answered without waiting for the dead node\'s timeout (5 s)')
})

test('Redis down: cluster-wide operations reject with FST_WS_HUB_REDIS_UNAVAILABLE, emitToNodes returns false, the local part is done', async (t) => {
  const server = await useRedisServer(t)
  if (server === undefined) return
  const node = await controlNode(t, { adapter: redisAdapter({ url: server.url, prefix: uniquePrefix(), stallTimeout: 200 }) })
  const ann = await userClient(node, 'ann', 'red')
  await server.kill()
  await assert.rejects(node.app.hub.fetchClients(), (error: Error & { code?: string }) => error.code === 'FST_WS_HUB_REDIS_UNAVAILABLE')
  // False once the adapter has seen the link go (until then a message is queued, then dropped and counted).
  await waitFor(() => !node.app.hub.emitToNodes('reload'), 5000, 'emitToNodes to say the link is down')
  await assert.rejects(node.app.hub.disconnect({ room: 'red' }, 4002), /Redis is unreachable/)
  assert.deepEqual(await ann.closed, { code: 4002, reason: '' }, 'this node\'s members were closed before the others were asked')
})

test('Redis stalled: a question whose PUBLISH gets no answer rejects with FST_WS_HUB_REDIS_UNAVAILABLE; questions waiting at close reject too', async (t) => {
  const server = await useRedisServer(t)
  if (server === undefined) return
  const prefix = uniquePrefix()
  const a = await controlNode(t, { adapter: redisAdapter({ url: server.url, prefix }), controlTimeout: 200 })
  const b = await controlNode(t, { adapter: redisAdapter({ url: server.url, prefix }), controlTimeout: 60_000 })
  await userClient(b, 'cid')
  server.pause()
  t.after(() => server.resume())
  await assert.rejects(a.app.hub.fetchClients(), (error: Error & { code?: string }) => error.code === 'FST_WS_HUB_REDIS_UNAVAILABLE')
  server.resume()
  // B closes while its question waits (Redis stalled again: no answer can come).
  await waitForAsync(async () => await a.app.hub.fetchClients().then(clients => clients.length === 1, () => false), 5000, 'Redis to answer again')
  const question = assert.rejects(b.app.hub.fetchClients(), (error: Error & { code?: string }) => error.code === 'FST_WS_HUB_REDIS_UNAVAILABLE')
  server.pause()
  await b.app.close()
  await question
})

test('garbage on the channels is counted and ignored; a question with an unknown operation is answered null', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  const node = await controlNode(t, { adapter: redisAdapter({ url, prefix }) })
  await userClient(node, 'ann')
  const redis = rawClient(t, url)
  const listener = rawClient(t, url)
  const answers: string[] = []
  listener.on('message', (_channel: string, message: string) => { answers.push(message) })
  await listener.subscribe(`${prefix}:db0:node:{asker}`)
  const everyone = `${prefix}:db0:all`
  const own = `${prefix}:db0:node:{${node.app.hub.nodeId}}`
  for (const garbage of ['wq', 'wqnot json', 'wq[1,2,3]', 'wq[1,"asker",{"no":"op"}]', 'wq[-1,"asker",{"op":"fetch"}]', 'wa[1,"x",null]']) {
    await redis.publish(everyone, garbage)
  }
  await redis.publish(own, 'wa[0,"x",null]')
  await redis.publish(own, 'wanot json')
  await redis.publish(everyone, 'wq[7,"asker",{"op":"unheard-of"}]')
  await redis.publish(everyone, 'wq[8,"asker",{"op":"fetch","room":5}]')
  await redis.publish(everyone, 'wq[9,"asker",{"op":"disconnect","target":{"room":"red"},"code":1,"reason":""}]')
  await redis.publish(everyone, 'wq[10,"asker",{"op":"fetch"}]')
  await waitFor(() => answers.length === 4, 5000, 'four answers')
  const id = node.app.hub.nodeId
  assert.deepEqual(answers.slice(0, 3).map(answer => JSON.parse(answer.slice(2)) as unknown), [[7, id, null], [8, id, null], [9, id, null]])
  const [, , clients] = JSON.parse((answers[3] as string).slice(2)) as [number, string, Array<{ params: unknown }>]
  assert.deepEqual(clients.map(info => info.params), [{ user: 'ann' }])
  assert.equal(node.app.hub.stats()['adapter.malformed'], 8)
  assert.equal((await node.app.hub.fetchClients()).length, 1, 'the node still works')
})
