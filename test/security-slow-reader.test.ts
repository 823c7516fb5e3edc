import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { createApp, waitFor } from './helpers.js'
import { openClient } from './churn.js'
import { mib, RawClient } from './raw-client.js'
import { fullGc } from './probes.js'

const MAX_BUFFERED = 64 * 1024
const WRITE_TIMEOUT = 500
const READERS = 10
const MESSAGE = Buffer.alloc(16 * 1024, 0x61).toString()
/** How long the hub is given to give up on the slow client (a time bound, not a message count: machines differ in speed). */
const GIVE_UP_WITHIN = 10_000
const WARMUP = 1000

test('a client that never reads is closed within writeTimeout once over maxBufferedBytes; the others get every message; memory stays bounded', async (t) => {
  const app = await createApp(t, { maxBufferedBytes: MAX_BUFFERED, writeTimeout: WRITE_TIMEOUT, shutdownTimeout: 500 })
  let slowClose: { code: number, at: number } | undefined
  let slowId = ''
  app.hub.route({
    url: '/ws',
    onClose (client, code) { if (client.id === slowId) slowClose = { code, at: performance.now() } }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  // Readers that count what they get without keeping it (keeping it would weigh on the RSS measured).
  const readers = await Promise.all(Array.from({ length: READERS }, () => openClient(`ws://127.0.0.1:${port}/ws`)))
  t.after(() => { for (const reader of readers) reader.terminate() })
  const counts = readers.map(() => 0)
  readers.forEach((reader, i) => reader.on('message', () => { counts[i] = (counts[i] as number) + 1 }))
  const known = new Set(app.hub.clients.keys())

  /** Broadcasts up to `count` messages, for at most `ms`, at the pace readers keep up with; returns the peak RSS seen. */
  async function pump (count: number, onEach: () => boolean = () => true, ms = Number.POSITIVE_INFINITY): Promise<number> {
    let peak = 0
    const deadline = performance.now() + ms
    for (let i = 0; i < count && performance.now() < deadline; i++) {
      app.hub.broadcast(MESSAGE)
      if (!onEach()) break
      // Two 16 KiB messages per turn stay under the 64 KiB mark for a reader that keeps up.
      if (i % 2 === 1) {
        peak = Math.max(peak, process.memoryUsage().rss)
        await new Promise(resolve => setImmediate(resolve))
      }
    }
    return peak
  }
  // The same traffic without a slow client first: the RSS it settles at (young generation,
  // socket buffers) is the baseline, so what follows measures the slow client's own cost.
  await fullGc()
  const rssAfterGc = process.memoryUsage().rss
  const rssBefore = await pump(WARMUP)
  await waitFor(() => counts.every(count => count === WARMUP), 10_000, 'the warm-up messages')

  const slow = await RawClient.upgrade(port)
  t.after(() => slow.destroy())
  slow.socket.pause() // never reads again: the kernel buffers fill, then the server's
  await waitFor(() => app.hub.onlineCount() === READERS + 1, 2000, 'the slow client to open')
  slowId = [...app.hub.clients.keys()].find(id => !known.has(id)) as string
  const slowSocket = app.hub.clients.get(slowId)?.socket
  assert.ok(slowSocket)

  let overAt = 0
  let decidedAt = 0
  let sent = 0
  let maxBuffered = 0
  let afterDecision = 0
  const start = performance.now()
  // Broadcast until the hub has given up on the slow client, then 100 more; bounded in time.
  const rssPeak = await pump(Number.POSITIVE_INFINITY, () => {
    sent++
    const buffered = slowSocket.bufferedAmount
    maxBuffered = Math.max(maxBuffered, buffered)
    if (overAt === 0 && buffered > MAX_BUFFERED) overAt = performance.now()
    if (decidedAt === 0 && app.hub.stats().slowConsumerCloses === 1) decidedAt = performance.now()
    if (decidedAt !== 0) afterDecision++
    return afterDecision < 100
  }, GIVE_UP_WITHIN)
  assert.ok(overAt > 0, `the slow client never went over maxBufferedBytes in ${sent} messages`)
  assert.ok(decidedAt > 0, 'the slow client was not closed')
  await waitFor(() => slowClose !== undefined, 3000, 'the slow client\'s onClose')
  await waitFor(() => counts.every(count => count >= WARMUP + sent), 10_000, 'the readers to get every message')

  const decision = Math.round(decidedAt - overAt)
  const gone = Math.round((slowClose?.at ?? 0) - overAt)
  const stats = app.hub.stats()
  // The sweep runs every writeTimeout / 4; a loaded machine may run its timer late, hence the slack.
  assert.ok(decision <= WRITE_TIMEOUT * 1.25 + 500, `closed ${decision} ms after going over the mark (writeTimeout ${WRITE_TIMEOUT} ms + one sweep + 500 ms of scheduling slack)`)
  assert.ok(decision >= WRITE_TIMEOUT - 1, `closed ${decision} ms after going over the mark, before writeTimeout`)
  assert.equal(stats.slowConsumerCloses, 1)
  assert.equal(app.hub.onlineCount(), READERS)
  assert.deepEqual(counts, readers.map(() => WARMUP + sent), 'every reader got every broadcast')
  assert.ok(readers.every(reader => reader.readyState === reader.OPEN))
  assert.ok(stats.dropped > 0, 'broadcasts skipped the slow client')
  const rssGrowth = rssPeak - rssBefore
  // RSS also moves with V8's young generation, which Node 24 sizes differently (22 MiB seen there once);
  // the slow client's own buffer is bounded exactly by the assertion below.
  assert.ok(rssGrowth < 32 * 1024 * 1024, `RSS grew ${mib(rssGrowth)} MiB`)
  assert.ok(maxBuffered < MAX_BUFFERED + 2 * Buffer.byteLength(MESSAGE) + 64, `the slow client's send buffer reached ${maxBuffered} bytes`)
  t.diagnostic(`over the mark after ${Math.round(overAt - start)} ms (${sent} messages of 16 KiB sent in all); closed 1008 by the hub ${decision} ms later, TCP gone ${gone} ms after the mark (code seen by onClose ${slowClose?.code}); ` +
    `slow send buffer peak ${Math.round(maxBuffered / 1024)} KiB, ${stats.dropped} messages skipped; readers ${READERS}/${READERS} got ${sent}/${sent} (after ${WARMUP} warm-up messages, all received too); RSS peak ${rssGrowth >= 0 ? '+' : ''}${mib(rssGrowth)} MiB over the same traffic without it (+${mib(rssPeak - rssAfterGc)} MiB over the RSS after GC before any traffic)`)
})
