import assert from 'node:assert/strict'
import { test } from 'node:test'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import { join, settle, startNode } from './adapter-contract.js'
import { connect } from './helpers.js'
import { eventually, rawClient, uniquePrefix, useRedisServer } from './redis-env.js'

/** How many times Redis ran a command, from INFO commandstats. */
function calls (info: string, command: string): number {
  const match = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)
  return match === null ? 0 : Number(match[1])
}

test('a room that empties and fills again within unsubscribeDelay keeps its subscription; one left empty is given up after it', async (t) => {
  const server = await useRedisServer(t)
  if (server === undefined) return
  const prefix = uniquePrefix()
  const unsubscribeDelay = 1000
  const a = await startNode(t, redisAdapter({ url: server.url, prefix, unsubscribeDelay }))
  const b = await startNode(t, redisAdapter({ url: server.url, prefix, unsubscribeDelay }))
  const admin = rawClient(t, server.url)
  const channel = `${prefix}:db0:room:{reload}`
  const first = await join(b, ['reload'])
  assert.deepEqual(await admin.pubsub('NUMSUB', channel), [channel, 1])
  const before = await admin.info('commandstats')

  // A page reload: the room's only member leaves, and comes back at once as a new client.
  const leftAt = Date.now()
  first.socket.close()
  await first.closed
  const again = await join(b, ['reload'])
  // The old client's channel is given up when the server sees the close, which may come after the new client is in.
  await eventually(async () => calls(await admin.info('commandstats'), 'unsubscribe') > calls(before, 'unsubscribe'), 5000, 'the old client\'s channel given up')
  const rejoinedWithin = Date.now() - leftAt
  const after = await admin.info('commandstats')
  if (rejoinedWithin < unsubscribeDelay) {
    // Only the client channels came and went (the old client's and the new one's); the room's
    // stayed: a resubscription would make two SUBSCRIBEs, an unsubscription two UNSUBSCRIBEs.
    assert.equal(calls(after, 'subscribe') - calls(before, 'subscribe'), 1, 'the new client\'s channel only')
    assert.equal(calls(after, 'unsubscribe') - calls(before, 'unsubscribe'), 1, 'the old client\'s channel only')
  } else {
    t.diagnostic(`the machine took ${rejoinedWithin} ms to reconnect: the subscription check is skipped`)
  }
  a.app.hub.broadcast('after the reload', { room: 'reload' })
  await settle(a, [again])
  assert.deepEqual(again.data(), ['after the reload'])

  // Left empty: given up once the delay has passed, not before.
  again.socket.close()
  await again.closed
  const emptySince = Date.now()
  await eventually(async () => (await admin.pubsub('NUMSUB', channel))[1] === 0, 10_000, 'the room\'s channel given up')
  assert.ok(Date.now() - emptySince >= unsubscribeDelay - 50, `given up after ${Date.now() - emptySince} ms`)
  assert.equal(b.app.hub.stats()['adapter.subscriptions'], 0)
})

test('the handshake waits until the client can be reached from other nodes, at most stallTimeout', async (t) => {
  const server = await useRedisServer(t)
  if (server === undefined) return
  const prefix = uniquePrefix()
  const a = await startNode(t, redisAdapter({ url: server.url, prefix }))
  const b = await startNode(t, redisAdapter({ url: server.url, prefix, stallTimeout: 3000 }))
  const admin = rawClient(t, server.url)

  // Redis answers nothing for 600 ms: b's SUBSCRIBE for the new client is confirmed only after that.
  await admin.client('PAUSE', 600, 'ALL')
  const pausedAt = Date.now()
  // Broadcasts on b meanwhile must not reach the new client before its handshake.
  const early = setInterval(() => b.app.hub.broadcast('early'), 5)
  const client = await join(b)
  clearInterval(early)
  const waited = Date.now() - pausedAt
  assert.match(client.messages[0] as string, /^id:/, 'the handshake (here the id) is the first message')
  assert.ok(waited >= 550, `the handshake came after ${waited} ms, before Redis confirmed the subscription`)
  // Reachable from the other node as soon as it has its handshake.
  assert.equal(a.app.hub.sendTo(client.id, 'right after the handshake'), true)
  await eventually(() => client.data().includes('right after the handshake'), 5000, 'the sendTo from node a')

  // A Redis that stays silent holds the handshake for stallTimeout at most.
  const c = await startNode(t, redisAdapter({ url: server.url, prefix, stallTimeout: 300 }))
  await admin.client('PAUSE', 4000, 'ALL')
  const slowAt = Date.now()
  const slow = await connect(`${c.url}/ws`)
  await slow.received(1)
  const held = Date.now() - slowAt
  assert.ok(held >= 250 && held < 2000, `the handshake was held ${held} ms`)
})
