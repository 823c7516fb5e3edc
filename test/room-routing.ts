import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import { join, settle, startCluster, type ClusterFactory, type NodeClient, type TestNode } from './adapter-contract.js'
import { eventually } from './redis-env.js'

/** A counter of a node's adapter, from `hub.stats()`. */
function counter (node: TestNode, name: string): number {
  return node.app.hub.stats()[`adapter.${name}`] ?? Number.NaN
}

/** Waits until a client holds `count` messages after its id. */
async function receivedAll (client: NodeClient, count: number, what: string): Promise<void> {
  await eventually(() => client.data().length >= count, 10_000, what)
}

/**
 * What an adapter that routes by room and by client must do, on whatever Redis the factory gives
 * (standalone, or a cluster with sharded channels): nodes receive only their own rooms' traffic.
 * @param publisherOrder whether a publisher's messages keep their order across channels (one
 *   connection carries them all: a standalone Redis), not only per room
 */
export function roomRoutingSuite (name: string, factory: ClusterFactory, publisherOrder: boolean): void {
  describe(`room routing: ${name}`, () => {
    const cluster = (t: TestContext, size: number): Promise<TestNode[] | undefined> => startCluster(t, factory, size)

    test('a node receives and decodes only the traffic of its own rooms and clients', async (t) => {
      const nodes = await cluster(t, 3)
      if (nodes === undefined) return
      const [a, b, c] = nodes as [TestNode, TestNode, TestNode]
      const onB = await join(b, ['b-room'])
      const onC = await join(c, ['c-room'])
      const small = 'b'.repeat(1000)
      const large = 'c'.repeat(5000)
      for (let i = 0; i < 50; i++) a.app.hub.broadcast(small, { room: 'b-room' })
      for (let i = 0; i < 30; i++) a.app.hub.broadcast(large, { room: 'c-room' })
      for (let i = 0; i < 20; i++) a.app.hub.sendTo(onB.id, small)
      await receivedAll(onB, 70, 'b-room and the sendTo messages')
      await receivedAll(onC, 30, 'c-room')
      await settle(a, [onB, onC])
      assert.equal(onB.data().length, 70)
      assert.equal(onC.data().length, 30)
      // settle added three envelopes per node: to everyone, to the node's room, to its client.
      assert.equal(counter(b, 'received'), 50 + 20 + 3)
      assert.equal(counter(c, 'received'), 30 + 3)
      assert.equal(counter(a, 'received'), 0)
      // Bytes: b decoded its 70 small envelopes and the sentinels, never c-room's large ones.
      const bBytes = counter(b, 'receivedBytes')
      assert.ok(bBytes >= 70 * 1000 && bBytes < 70 * 1300, `node b decoded ${bBytes} bytes`)
      const cBytes = counter(c, 'receivedBytes')
      assert.ok(cBytes >= 30 * 5000 && cBytes < 30 * 5300, `node c decoded ${cBytes} bytes`)
      // a has no member anywhere: it decoded only its own broadcast to everyone (settle's), which Redis sends every node.
      assert.ok(counter(a, 'receivedBytes') < 200)
    })

    test('a broadcast to several rooms reaches each member once, through the first of its rooms, in order with that room', async (t) => {
      const nodes = await cluster(t, 2)
      if (nodes === undefined) return
      const [a, b] = nodes as [TestNode, TestNode]
      const both = await join(b, ['r1', 'r2', 'r3'])
      const second = await join(b, ['r2'])
      const third = await join(b, ['r3'])
      const neither = await join(b, ['r4'])
      const count = 100
      for (let i = 0; i < count; i++) {
        a.app.hub.broadcast(`multi ${i}`, { room: ['r1', 'r2', 'r3'] })
        if (i % 10 === 0) a.app.hub.broadcast(`r2 ${i}`, { room: 'r2' })
      }
      await settle(a, [both, second, third, neither])
      const multi = Array.from({ length: count }, (_, i) => `multi ${i}`)
      const onlyR2 = Array.from({ length: count / 10 }, (_, i) => `r2 ${i * 10}`)
      assert.deepEqual(both.data().filter(m => m.startsWith('multi')), multi)
      assert.deepEqual(both.data().filter(m => m.startsWith('r2')), onlyR2)
      assert.deepEqual(second.data(), second.data().filter(m => m.startsWith('multi') || m.startsWith('r2')))
      assert.deepEqual(second.data().filter(m => m.startsWith('multi')), multi)
      // second is in r2 alone: it gets the multi-room broadcasts through r2's copy, in order with
      // r2's own messages, on a cluster too (one channel, one shard).
      const sentToR2: string[] = []
      for (let i = 0; i < count; i++) {
        sentToR2.push(`multi ${i}`)
        if (i % 10 === 0) sentToR2.push(`r2 ${i}`)
      }
      assert.deepEqual(second.data(), sentToR2)
      if (publisherOrder) {
        // One connection carries every channel: both's r2 messages interleave with the rest as sent too.
        assert.deepEqual(both.data().filter(m => m.startsWith('multi') || m.startsWith('r2')), sentToR2)
      }
      assert.deepEqual(third.data(), multi)
      assert.deepEqual(neither.data(), [])
      // Three copies of each came to b (r1, r2, r3), each delivered to its own members only; and
      // settle's nine: to everyone, to r1 to r4, to each of the four clients.
      assert.equal(counter(b, 'received'), 3 * count + count / 10 + 9)
    })

    test('a room left and joined again later starts a fresh sequence: what was sent meanwhile is not counted lost', async (t) => {
      const nodes = await cluster(t, 2)
      if (nodes === undefined) return
      const [a, b] = nodes as [TestNode, TestNode]
      const first = await join(b, ['again'])
      for (let i = 0; i < 5; i++) a.app.hub.broadcast(`before ${i}`, { room: 'again' })
      await receivedAll(first, 5, 'the first five')
      first.socket.close()
      await first.closed
      await eventually(() => counter(b, 'subscriptions') === 0, 10_000, 'b off the room')
      // Nobody on b hears these: b is not subscribed. They must have reached Redis before b
      // subscribes again (on a cluster a publish may still wait in the client's queue while b's
      // SSUBSCRIBE reaches the shard, and b's new member would get it before its id).
      const published = counter(a, 'published')
      for (let i = 0; i < 20; i++) a.app.hub.broadcast(`meanwhile ${i}`, { room: 'again' })
      await eventually(() => counter(a, 'published') + counter(a, 'dropped') >= published + 20, 5000, 'the twenty handed to Redis')
      const second = await join(b, ['again'])
      for (let i = 0; i < 5; i++) a.app.hub.broadcast(`after ${i}`, { room: 'again' })
      await receivedAll(second, 5, 'the last five')
      assert.deepEqual(second.data(), ['after 0', 'after 1', 'after 2', 'after 3', 'after 4'])
      assert.equal(counter(b, 'lost'), 0)
      assert.equal(counter(b, 'gaps'), 0)
    })

    test('a client that leaves stops the traffic of its rooms and its id to its node', async (t) => {
      const nodes = await cluster(t, 2)
      if (nodes === undefined) return
      const [a, b] = nodes as [TestNode, TestNode]
      const stays = await join(b, ['kept'])
      const leaves = await join(b, ['gone'])
      const leftId = leaves.id
      leaves.socket.close()
      await leaves.closed
      // unsubscribeDelay of the factory's adapters is short: the room's and the client's channels go.
      await eventually(() => counter(b, 'subscriptions') === 2, 10_000, 'b down to the channels of kept and of the client that stays')
      const before = counter(b, 'receivedBytes')
      for (let i = 0; i < 20; i++) {
        a.app.hub.broadcast('to an empty room', { room: 'gone' })
        a.app.hub.sendTo(leftId, 'to a client gone')
      }
      a.app.hub.broadcast('to kept', { room: 'kept' })
      await receivedAll(stays, 1, 'the kept room')
      await settle(a, [stays])
      assert.deepEqual(stays.data(), ['to kept'])
      // All that b ever received: 'to kept' and settle's sentinels (everyone, kept, the client), nothing for 'gone'.
      assert.equal(counter(b, 'received'), 1 + 3)
      // Those four are about 500 bytes; the 40 envelopes for the room and client gone would be over 3,000.
      const decoded = counter(b, 'receivedBytes') - before
      assert.ok(decoded < 1000, `b decoded ${decoded} bytes since the client left`)
    })
  })
}
