import assert from 'node:assert/strict'
import { test } from 'node:test'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import { join, settle, startNode } from './adapter-contract.js'
import { eventually, uniquePrefix, useRedisServer, type RedisServer } from './redis-env.js'

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** The promise, or a rejection after `ms`: a count that hangs fails the test instead of holding it. */
function deadline<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms) })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

test('a stalled Redis (SIGSTOP) is an outage within stallTimeout, and nothing arrives later than maxDeliveryDelay', async (t) => {
  const server = await useRedisServer(t) as RedisServer | undefined
  if (server === undefined) return
  const prefix = uniquePrefix()
  const stallTimeout = 500
  const maxDeliveryDelay = 800
  const options = { url: server.url, prefix, stallTimeout, maxDeliveryDelay }
  const a = await startNode(t, redisAdapter(options))
  const b = await startNode(t, redisAdapter(options))
  const b1 = await join(b)
  // When each message reached the client on node b, against when node a sent it (both in this process).
  const delays: Array<{ sent: number, delay: number }> = []
  b1.socket.on('message', (data) => {
    const [kind, sent] = String(data).split(' ')
    if (kind === 'm') delays.push({ sent: Number(sent), delay: Date.now() - Number(sent) })
  })
  // Node a sends to b1 every 5 ms all along; each send's result is kept.
  const results: Array<{ at: number, ok: boolean }> = []
  const sender = setInterval(() => {
    const at = Date.now()
    results.push({ at, ok: a.app.hub.sendTo(b1.id, `m ${at}`) })
  }, 5)
  t.after(() => clearInterval(sender))
  await eventually(() => delays.length >= 20, 3000, 'delivery before the stall')

  server.pause()
  const pausedAt = Date.now()
  let countMs = 0
  let detectedMs = 0
  // Resumed whatever happens: the apps' close after a failed assertion must find Redis awake.
  try {
    // A count sent into the stall rejects within stallTimeout, not when Redis wakes up.
    await assert.rejects(deadline(a.app.hub.clusterCount(), 3000), { code: 'FST_WS_HUB_REDIS_UNAVAILABLE', statusCode: 503 })
    countMs = Date.now() - pausedAt
    // Publishes are refused (false, counted as dropped) within 1.25 stallTimeout of the first unanswered one.
    await eventually(() => results.at(-1)?.ok === false, 3000, 'sendTo to return false')
    detectedMs = Date.now() - pausedAt
    const droppedAtDetection = a.app.hub.stats()['adapter.dropped'] as number
    assert.ok(droppedAtDetection > 0)
    await assert.rejects(deadline(a.app.hub.clusterRoomSize('any'), 1000), { code: 'FST_WS_HUB_REDIS_UNAVAILABLE' })
    assert.ok((a.app.hub.stats()['adapter.pendingBytes'] as number) <= 16 * 1024 * 1024)
    await sleep(2000 - (Date.now() - pausedAt))
    assert.ok(results.filter(result => result.at > pausedAt + detectedMs).every(result => !result.ok), 'every send after detection refused')
    assert.ok((a.app.hub.stats()['adapter.dropped'] as number) > droppedAtDetection)
  } finally {
    server.resume()
  }
  const resumedAt = Date.now()
  await eventually(() => delays.some(({ sent }) => sent > resumedAt), 5000, 'delivery to resume')
  const resumeMs = Date.now() - resumedAt
  clearInterval(sender)
  const b2 = await join(b)
  await settle(a, [b2])
  const worst = Math.max(...delays.map(({ delay }) => delay))
  t.diagnostic(`stall seen by a count after ${countMs} ms and by publishes after ${detectedMs} ms (stallTimeout ${stallTimeout}); ` +
    `delivery back ${resumeMs} ms after SIGCONT; worst delivery delay ${worst} ms (maxDeliveryDelay ${maxDeliveryDelay}); ` +
    `late envelopes dropped on b: ${b.app.hub.stats()['adapter.late']}`)
  assert.ok(countMs < stallTimeout + 300, `count rejected after ${countMs} ms`)
  assert.ok(detectedMs < 1.25 * stallTimeout + 300, `stall seen after ${detectedMs} ms`)
  // Sent before the stall was seen, held by Redis, and too old when it woke up: dropped, never delivered.
  assert.ok((b.app.hub.stats()['adapter.late'] as number) > 0)
  // The publisher's clock is the receiver's here: the only slack is the hop from node b to its client.
  assert.ok(worst <= maxDeliveryDelay + 100, `a message arrived ${worst} ms after it was sent`)
  await eventually(async () => await a.app.hub.clusterCount() === 2, 3000, 'counts back')
})

test('clusterCount in flight when Redis dies rejects with RedisUnavailableError, the connection error as its cause', async (t) => {
  const server = await useRedisServer(t) as RedisServer | undefined
  if (server === undefined) return
  const stallTimeout = 5000
  const a = await startNode(t, redisAdapter({ url: server.url, prefix: uniquePrefix(), stallTimeout }))
  await join(a)
  assert.equal(await a.app.hub.clusterCount(), 1)
  // Paused first, so that the count is surely in flight when the server dies.
  server.pause()
  const sentAt = Date.now()
  const outcome = deadline(a.app.hub.clusterCount(), 3000).then((count): Error & { code?: string } => new Error(`counted ${count}`), (error: unknown) => error as Error & { code?: string })
  await sleep(50)
  // Killed even when paused (SIGKILL needs no SIGCONT).
  await server.kill()
  const error = await outcome
  assert.ok(Date.now() - sentAt < stallTimeout)
  assert.equal(error.code, 'FST_WS_HUB_REDIS_UNAVAILABLE', error.message)
  assert.ok(error.cause instanceof Error, 'the cause is kept')
  t.diagnostic(`cause: ${error.cause.message}`)
  assert.doesNotMatch(error.cause.message, /did not answer within/, 'the connection loss, not the stall timeout, ended it')
})

test('what waits for Redis is bounded by maxPendingBytes: a burst above it is dropped and counted', async (t) => {
  const server = await useRedisServer(t) as RedisServer | undefined
  if (server === undefined) return
  const prefix = uniquePrefix()
  const maxPendingBytes = 64 * 1024
  const a = await startNode(t, redisAdapter({ url: server.url, prefix, maxPendingBytes }))
  const b = await startNode(t, redisAdapter({ url: server.url, prefix }))
  const b1 = await join(b)
  const payload = 'x'.repeat(2048)
  // One turn: nothing is acknowledged yet, so the 64 KiB fill with about 31 messages of 2 KiB.
  const accepted = Array.from({ length: 100 }, () => a.app.hub.sendTo(b1.id, payload)).filter(Boolean).length
  t.diagnostic(`${accepted} of 100 accepted`)
  assert.ok(accepted > 20 && accepted < 32, `${accepted} accepted`)
  assert.equal(a.app.hub.stats()['adapter.dropped'], 100 - accepted)
  await eventually(() => b1.data().length === accepted, 3000, 'the accepted ones to arrive')
  // Once Redis has acknowledged them, there is room again.
  await eventually(() => a.app.hub.stats()['adapter.pendingBytes'] === 0, 3000, 'the backlog to drain')
  assert.equal(a.app.hub.sendTo(b1.id, 'again'), true)
  await eventually(() => b1.data().at(-1) === 'again', 3000, 'the next one')
})
