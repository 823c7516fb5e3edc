import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { MemoryBus, memoryAdapter, type HubAdapter } from '../dist/index.js'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import { createApp, listen } from './helpers.js'
import { eventually, uniquePrefix, useRedis } from './redis-env.js'
import { connectTyped, schemas, type TypedTestClient } from './typed-env.js'

/** A node of a cluster with the typed chat at /chat: `say` broadcasts `said` to the lobby, cluster-wide. */
async function chatNode (t: TestContext, adapter: HubAdapter): Promise<{ app: FastifyInstance, url: string }> {
  const app = await createApp(t, { handshakeMessage: false, adapter })
  app.hub.route({
    url: '/chat',
    messages: { say: schemas.say, join: schemas.join },
    events: { said: schemas.said },
    handlers: {
      say (client, data) { client.hub.broadcastEvent('said', { from: client.id, text: data.text }, { room: 'lobby', except: client }) },
      join (client, data) { client.join(data.room) }
    }
  })
  return { app, url: `${await listen(app)}/chat` }
}

async function joinLobby (url: string): Promise<TypedTestClient> {
  const client = await connectTyped(url)
  client.sendJson({ type: 'join', id: 'j', data: { room: 'lobby' } })
  await client.received(1)
  return client
}

async function eventsCrossNodes (t: TestContext, makeAdapter: () => HubAdapter): Promise<void> {
  const a = await chatNode(t, makeAdapter())
  const b = await chatNode(t, makeAdapter())
  const onA = await joinLobby(a.url)
  const onB = await joinLobby(b.url)
  const outsideB = await connectTyped(b.url)
  await eventually(async () => await a.app.hub.clusterRoomSize('lobby') === 2, 5000, 'both lobby members to be counted')

  // From node A's hub: serialised once on A, delivered as text by B with no schema of its own needed.
  const hubA = a.app.hub as unknown as { broadcastEvent (type: string, data: unknown, options?: object): number }
  assert.equal(hubA.broadcastEvent('said', { from: 'server', text: 'to the lobby' }, { room: 'lobby' }), 1)
  // From a handler on node A, except its sender.
  onA.sendJson({ type: 'say', data: { text: 'hello from A' } })
  await eventually(() => onB.messages.length === 3, 5000, 'the two events on node B')
  assert.deepEqual(onB.messages.slice(1).map(text => JSON.parse(text) as unknown), [
    { type: 'said', data: { from: 'server', text: 'to the lobby' } },
    { type: 'said', data: { from: idOf(a.app), text: 'hello from A' } }
  ])
  assert.deepEqual(onA.messages.slice(1).map(text => (JSON.parse(text) as { data: { text: string } }).data.text), ['to the lobby'])
  assert.deepEqual(outsideB.messages, [], 'no event reaches a client outside the room')
}

/** The id of the one client of a node. */
function idOf (app: FastifyInstance): string {
  const [id] = app.hub.clients.keys()
  return id as string
}

test('broadcastEvent from node A reaches typed clients on node B, rooms and except kept (MemoryBus)', async (t) => {
  const bus = new MemoryBus()
  await eventsCrossNodes(t, () => memoryAdapter({ bus }))
})

test('broadcastEvent from node A reaches typed clients on node B, rooms and except kept (Redis)', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return
  const prefix = uniquePrefix()
  await eventsCrossNodes(t, () => redisAdapter({ url, prefix }))
})
