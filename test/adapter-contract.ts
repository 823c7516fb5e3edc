import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { HubAdapter } from '../dist/index.js'
import { connect, createApp, listen, type TestClient } from './helpers.js'
import { eventually } from './redis-env.js'

/**
 * Makes a fresh cluster for one test: returns a function that makes the adapter of one more node
 * of it, or undefined when the engine is not available (the factory has skipped the test).
 */
export type ClusterFactory = (t: TestContext) => Promise<(() => HubAdapter) | undefined>

/** One hub of a test cluster. */
export interface TestNode {
  app: FastifyInstance
  url: string
}

/** A client of a test node, with its hub id and rooms; `data()` is what it received after its id. */
export interface NodeClient extends TestClient {
  id: string
  rooms: string[]
  data (): string[]
}

/**
 * Starts a hub on a free port with the given adapter. Its route `/ws` joins the rooms listed in
 * `?rooms=a,b` and, once the joins are in place across the cluster, sends the client its id
 * (`id:<id>`) as the first message.
 */
export async function startNode (t: TestContext, adapter: HubAdapter): Promise<TestNode> {
  const app = await createApp(t, { adapter, handshakeMessage: false })
  app.hub.route({
    url: '/ws',
    async onOpen (client) {
      const { rooms } = client.request.query as { rooms?: string }
      await Promise.all((rooms?.split(',') ?? []).map(room => client.join(room)))
      client.send(`id:${client.id}`)
    }
  })
  return { app, url: await listen(app) }
}

/** Connects a client to a node, in the given rooms, and waits for its id. */
export async function join (node: Pick<TestNode, 'url'>, rooms: string[] = []): Promise<NodeClient> {
  const client = await connect(`${node.url}/ws${rooms.length > 0 ? `?rooms=${rooms.join(',')}` : ''}`)
  const [first] = await client.received(1)
  return Object.assign(client, { id: (first as string).slice(3), rooms, data: () => client.messages.slice(1) })
}

let sentinels = 0

/**
 * Sends sentinels from `from` down every path a message to these clients can take (a broadcast to
 * everyone, one to each of their rooms, a `sendTo` each) and waits until each client has all of
 * its own. A node receives a publisher's messages in order per room and per client, so whatever
 * `from` sent them before has arrived by then: what the clients hold is final, duplicates
 * included. The sentinels are then taken out of what they hold.
 */
export async function settle (from: TestNode, clients: NodeClient[]): Promise<void> {
  const sentinel = `sentinel-${++sentinels}`
  const hub = from.app.hub
  hub.broadcast(`${sentinel}:all`)
  const rooms = new Set(clients.flatMap(client => client.rooms))
  for (const room of rooms) hub.broadcast(`${sentinel}:room:${room}`, { room })
  for (const client of clients) hub.sendTo(client.id, `${sentinel}:to`)
  const expected = (client: NodeClient): string[] =>
    [`${sentinel}:all`, `${sentinel}:to`, ...client.rooms.map(room => `${sentinel}:room:${room}`)]
  await eventually(() => clients.every(client => expected(client).every(message => client.messages.includes(message))), 5000, sentinel)
  for (const client of clients) {
    for (let i = client.messages.length - 1; i >= 0; i--) {
      if (client.messages[i]?.startsWith(sentinel) === true) client.messages.splice(i, 1)
    }
  }
}

/**
 * Starts `size` nodes of a fresh cluster from the factory, each on a free port; undefined when the
 * factory has skipped the test (its engine is not available here).
 */
export async function startCluster (t: TestContext, factory: ClusterFactory, size: number): Promise<TestNode[] | undefined> {
  const makeAdapter = await factory(t)
  if (makeAdapter === undefined) return undefined
  const nodes: TestNode[] = []
  for (let i = 0; i < size; i++) nodes.push(await startNode(t, makeAdapter()))
  return nodes
}

/** The adapter contract: every adapter must pass it, the in-memory one and the Redis one alike. */
export function adapterContract (name: string, factory: ClusterFactory): void {
  describe(`adapter contract: ${name}`, () => {
    const cluster = (t: TestContext, size: number): Promise<TestNode[] | undefined> => startCluster(t, factory, size)

    test('a broadcast reaches every client on every node exactly once', async (t) => {
      const nodes = await cluster(t, 3)
      if (nodes === undefined) return
      const [a, b, c] = nodes as [TestNode, TestNode, TestNode]
      const clients = [await join(a), await join(a), await join(b), await join(c), await join(c)]
      assert.equal(a.app.hub.broadcast('hello'), 2)
      await settle(a, clients)
      for (const client of clients) assert.deepEqual(client.data(), ['hello'])
    })

    test('a room broadcast reaches the members of any of its rooms on every node, each once', async (t) => {
      const nodes = await cluster(t, 2)
      if (nodes === undefined) return
      const [a, b] = nodes as [TestNode, TestNode]
      const redA = await join(a, ['red'])
      const redB = await join(b, ['red'])
      const blueB = await join(b, ['blue'])
      const bothB = await join(b, ['red', 'blue'])
      const noneB = await join(b)
      a.app.hub.broadcast('to red', { room: 'red' })
      a.app.hub.broadcast('to red or blue', { room: ['red', 'blue'] })
      const everyone = [redA, redB, blueB, bothB, noneB]
      await settle(a, everyone)
      // Sorted: order is promised per room, and 'to red or blue' may come through blue's channel.
      assert.deepEqual(redA.data().sort(), ['to red', 'to red or blue'])
      assert.deepEqual(redB.data().sort(), ['to red', 'to red or blue'])
      assert.deepEqual(blueB.data(), ['to red or blue'])
      assert.deepEqual(bothB.data().sort(), ['to red', 'to red or blue'])
      assert.deepEqual(noneB.data(), [])
    })

    test('except leaves out one client, wherever it is connected', async (t) => {
      const nodes = await cluster(t, 2)
      if (nodes === undefined) return
      const [a, b] = nodes as [TestNode, TestNode]
      const a1 = await join(a, ['room'])
      const b1 = await join(b, ['room'])
      const b2 = await join(b, ['room'])
      a.app.hub.broadcast('not for b1', { except: b1.id })
      a.app.hub.broadcast('not for a1', { room: 'room', except: a1.id })
      await settle(a, [a1, b1, b2])
      assert.deepEqual(a1.data(), ['not for b1'])
      assert.deepEqual(b1.data(), ['not for a1'])
      // Sorted: a broadcast to everyone and one to a room are not ordered with each other.
      assert.deepEqual(b2.data().sort(), ['not for a1', 'not for b1'])
    })

    test('sendTo reaches a client on another node, and nobody else', async (t) => {
      const nodes = await cluster(t, 3)
      if (nodes === undefined) return
      const [a, b, c] = nodes as [TestNode, TestNode, TestNode]
      const a1 = await join(a)
      const b1 = await join(b)
      const b2 = await join(b)
      const c1 = await join(c)
      assert.equal(a.app.hub.sendTo(b2.id, 'just for b2'), true)
      assert.equal(c.app.hub.sendTo(a1.id, { to: 'a1' }), true)
      a.app.hub.sendTo('nobody-has-this-id', 'lost')
      await settle(a, [a1, b1, b2, c1])
      await settle(c, [a1, b1, b2, c1])
      assert.deepEqual(b2.data(), ['just for b2'])
      assert.deepEqual(a1.data(), ['{"to":"a1"}'])
      assert.deepEqual(b1.data(), [])
      assert.deepEqual(c1.data(), [])
    })

    test('each node receives every publisher\'s messages in its publish order', async (t) => {
      const nodes = await cluster(t, 3)
      if (nodes === undefined) return
      const [a, b, c] = nodes as [TestNode, TestNode, TestNode]
      const receivers = [await join(b), await join(c), await join(c)]
      const count = 200
      const expectedA: string[] = []
      const expectedB: string[] = []
      for (let i = 0; i < count; i++) {
        a.app.hub.broadcast(`a${i}`)
        expectedA.push(`a${i}`)
        if (i % 2 === 0) {
          b.app.hub.sendTo(receivers[1]!.id, `b${i}`)
          expectedB.push(`b${i}`)
        }
      }
      await settle(a, receivers)
      await settle(b, receivers)
      for (const receiver of receivers) {
        assert.deepEqual(receiver.data().filter(m => m.startsWith('a')), expectedA)
      }
      assert.deepEqual(receivers[1]!.data().filter(m => m.startsWith('b')), expectedB)
    })

    test('binary and text payloads cross nodes byte for byte', async (t) => {
      const nodes = await cluster(t, 2)
      if (nodes === undefined) return
      const [a, b] = nodes as [TestNode, TestNode]
      const b1 = await join(b)
      const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
      const big = Buffer.alloc(40_000, 0xab)
      a.app.hub.broadcast(everyByte)
      a.app.hub.broadcast('héllo → 世界 \u0000 end')
      a.app.hub.sendTo(b1.id, big)
      a.app.hub.broadcast('')
      await settle(a, [b1])
      // Sorted: the sendTo is not ordered with the broadcasts to everyone.
      assert.deepEqual(b1.data().sort(), [
        `binary:${everyByte.toString('hex')}`,
        'héllo → 世界 \u0000 end',
        `binary:${big.toString('hex')}`,
        ''
      ].sort())
    })

    test('clusterCount and clusterRoomSize sum every node and follow clients that leave', async (t) => {
      const nodes = await cluster(t, 2)
      if (nodes === undefined) return
      const [a, b] = nodes as [TestNode, TestNode]
      await join(a, ['x'])
      await join(b, ['x', 'y'])
      const leaving = await join(b, ['y'])
      for (const node of nodes) {
        await eventually(async () => await node.app.hub.clusterCount() === 3, 3000, 'clusterCount 3')
        await eventually(async () => await node.app.hub.clusterRoomSize('x') === 2, 3000, 'room x of 2')
        await eventually(async () => await node.app.hub.clusterRoomSize('y') === 2, 3000, 'room y of 2')
        assert.equal(await node.app.hub.clusterRoomSize('nowhere'), 0)
      }
      leaving.socket.close()
      await leaving.closed
      await eventually(async () => await a.app.hub.clusterCount() === 2, 3000, 'clusterCount 2 after a close')
      await eventually(async () => await a.app.hub.clusterRoomSize('y') === 1, 3000, 'room y of 1 after a close')
      assert.equal(await b.app.hub.clusterCount(), 2)
    })

    test('a node that closes leaves the cluster count, and the others go on', async (t) => {
      const nodes = await cluster(t, 3)
      if (nodes === undefined) return
      const [a, b, c] = nodes as [TestNode, TestNode, TestNode]
      await join(a)
      const b1 = await join(b)
      await join(c)
      await join(c)
      await eventually(async () => await b.app.hub.clusterCount() === 4, 3000, 'clusterCount 4')
      // Published just before close: it still leaves.
      c.app.hub.broadcast('last words of c')
      await c.app.close()
      assert.equal(await a.app.hub.clusterCount(), 2)
      assert.equal(await b.app.hub.clusterCount(), 2)
      a.app.hub.broadcast('after c left')
      await settle(a, [b1])
      assert.deepEqual(b1.data(), ['last words of c', 'after c left'])
    })
  })
}
