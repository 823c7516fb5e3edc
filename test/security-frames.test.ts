import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { test, type TestContext } from 'node:test'
import { deflateRawSync } from 'node:zlib'
import type { FastifyWsHubOptions } from '../dist/index.js'
import { connect, createApp, waitFor, within, type TestClient } from './helpers.js'
import { closeFrame, frame, mib, RawClient, textFrame, upgradeRequest } from './raw-client.js'
import { fullGc, heapAfterGc } from './probes.js'

interface Received { length: number, isBinary: boolean }

/** An app with one route that records messages and every onError call, per client. */
async function frameApp (t: TestContext, hubOptions: FastifyWsHubOptions = {}) {
  const app = await createApp(t, hubOptions)
  const received: Received[] = []
  const errors = new Map<string, Error[]>()
  const closeCodes: number[] = []
  app.hub.route({
    url: '/ws',
    onClose (_client, code) { closeCodes.push(code) },
    onMessage (_client, data, isBinary) { received.push({ length: Buffer.byteLength(data), isBinary }) },
    onError (client, error) {
      const list = errors.get(client.id) ?? []
      list.push(error)
      errors.set(client.id, list)
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const raws: RawClient[] = []
  t.after(() => { for (const raw of raws) raw.destroy() })
  async function raw (headers: Record<string, string> = {}): Promise<RawClient> {
    const client = await RawClient.upgrade(port, '/ws', headers)
    raws.push(client)
    await client.dataFrames(1) // the handshake message: the client is registered
    return client
  }
  return { app, port, raw, received, errors, closeCodes, url: `ws://127.0.0.1:${port}` }
}

/** Resolves once a flooding client's socket drained, closed, or `timeoutMs` passed, whichever comes first. */
async function drainOrClose (client: RawClient, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  let onDrain: (() => void) | undefined
  await Promise.race([
    new Promise<void>(resolve => { onDrain = resolve; client.socket.once('drain', onDrain) }),
    client.closed,
    new Promise<void>(resolve => { timer = setTimeout(resolve, Math.max(0, timeoutMs)) })
  ])
  clearTimeout(timer)
  if (onDrain !== undefined) client.socket.off('drain', onDrain)
}

/** Whether a raw client has seen its close (a close frame or the socket's end), read synchronously. */
function closedFlag (client: RawClient): () => boolean {
  let closed = false
  client.closed.then(() => { closed = true }, () => {})
  return () => closed
}

test('maxPayload: a message of exactly maxPayload bytes is accepted; one byte more gets 1009 at once, and 50 other clients are untouched', async (t) => {
  const { app, raw, received, url } = await frameApp(t)
  const maxPayload = 65_535 // the default
  const others: TestClient[] = await Promise.all(Array.from({ length: 50 }, () => connect(`${url}/ws`)))
  t.after(() => { for (const other of others) other.socket.terminate() })
  await Promise.all(others.map(other => other.received(1)))

  const client = await raw()
  client.write(frame({ opcode: 2, payload: Buffer.alloc(maxPayload, 7) }))
  await waitFor(() => received.length === 1, 2000, 'the maxPayload message')
  assert.deepEqual(received[0], { length: maxPayload, isBinary: true })

  const oversized = frame({ opcode: 2, payload: Buffer.alloc(maxPayload + 1, 7) })
  await new Promise<void>(resolve => client.socket.write(oversized, () => resolve()))
  client.mark()
  const close = await client.closed
  assert.equal(close.code, 1009)
  // At once: on reading the frame's header, not by a timer (the shortest a hub timer waits here is
  // seconds). The bound leaves room for a loaded machine's scheduling.
  assert.ok(close.elapsed < 1000, `closed ${close.elapsed} ms after the write, expected < 1000`)
  assert.equal(received.length, 1, 'the oversized message never reached onMessage')

  await waitFor(() => app.hub.onlineCount() === 50, 2000, 'the oversized client to leave')
  assert.equal(app.hub.broadcast('still here'), 50)
  await Promise.all(others.map(other => other.received(2)))
  assert.ok(others.every(other => other.socket.readyState === other.socket.OPEN && other.messages[1] === 'still here'))
  t.diagnostic(`1009 after ${close.elapsed} ms; 50/50 other clients open and got the next broadcast`)
})

test('invalid UTF-8 in a text message gets 1007, whole or split across fragments; a valid character split across fragments passes', async (t) => {
  const { app, raw, received, errors } = await frameApp(t)
  const whole = await raw()
  whole.write(textFrame(Buffer.from([0x68, 0x69, 0xff, 0xfe])))
  assert.equal((await whole.closed).code, 1007)

  const split = await raw()
  // E2 82 starts the euro sign; a continuation that does not finish it makes the message invalid.
  split.write(textFrame(Buffer.from([0x41, 0xe2, 0x82]), false))
  split.write(frame({ opcode: 0, payload: Buffer.from([0x28]) }))
  assert.equal((await split.closed).code, 1007)

  const valid = await raw()
  valid.write(textFrame(Buffer.from([0x41, 0xe2, 0x82]), false))
  valid.write(frame({ opcode: 0, payload: Buffer.from([0xac]) }))
  await waitFor(() => received.length === 1, 2000, 'the valid split message')
  assert.deepEqual(received, [{ length: 4, isBinary: false }])
  assert.equal(app.hub.onlineCount(), 1)
  assert.deepEqual([...errors.values()].map(list => list.length), [1, 1], 'onError once for each invalid client')
})

test('bad RSV bits and an unmasked client frame get 1002; onError runs at most once per client and the process goes on', async (t) => {
  const { app, raw, errors, url } = await frameApp(t)
  const cases: Array<[string, Buffer[]]> = [
    ['RSV1 without a negotiated extension', [frame({ opcode: 1, payload: 'x', rsv: 0b100 })]],
    ['RSV2', [frame({ opcode: 2, payload: 'x', rsv: 0b010 })]],
    ['RSV3', [frame({ opcode: 2, payload: 'x', rsv: 0b001 })]],
    ['unmasked client frame', [frame({ opcode: 1, payload: 'hello', mask: false })]],
    ['reserved opcode 3', [frame({ opcode: 3, payload: 'x' })]],
    ['fragmented ping', [frame({ opcode: 9, payload: 'x', fin: false })]],
    ['continuation without a start', [frame({ opcode: 0, payload: 'x' })]],
    // Several bad frames in one write: still one onError.
    ['three bad frames at once', [frame({ opcode: 1, payload: 'x', rsv: 0b100 }), frame({ opcode: 1, payload: 'y', mask: false }), textFrame(Buffer.from([0xff]))]]
  ]
  for (const [what, frames] of cases) {
    const client = await raw()
    client.write(Buffer.concat(frames))
    assert.equal((await client.closed).code, 1002, what)
  }
  await waitFor(() => app.hub.onlineCount() === 0, 2000, 'every bad client to leave')
  assert.equal(errors.size, cases.length, 'each bad client reported')
  assert.ok([...errors.values()].every(list => list.length === 1), 'at most once per client')
  const fresh = await connect(`${url}/ws`)
  assert.equal((await fresh.received(1)).length, 1, 'a fresh client is served')
  fresh.socket.close()
})

test('200k empty fragments without FIN are cut by ws\'s fragment limit (1008) with bounded memory', async (t) => {
  const { raw } = await frameApp(t)
  await fullGc()
  const rssBefore = process.memoryUsage().rss
  const client = await raw()
  const empty = frame({ opcode: 0, fin: false })
  const batch = Buffer.concat(Array.from({ length: 1000 }, () => empty))
  client.write(textFrame('', false))
  client.mark()
  let sent = 0
  const closeSeen = (): boolean => client.frames.some(f => f.opcode === 8)
  const closed = closedFlag(client)
  // ws's limit is 16,384 fragments: 200k is far past it, however fast either side runs.
  while (sent < 200_000 && !closeSeen() && !closed() && !client.socket.destroyed) {
    if (!client.write(batch)) {
      await drainOrClose(client, 10_000)
    }
    sent += 1000
  }
  const close = await within(client.closed, 10_000, 'the close after the fragment limit')
  const rssGrowth = process.memoryUsage().rss - rssBefore
  assert.equal(close.code, 1008)
  assert.equal(close.reason, '')
  assert.ok(rssGrowth < 50 * 1024 * 1024, `RSS grew ${mib(rssGrowth)} MiB`)
  t.diagnostic(`1008 after ${close.elapsed} ms, ${sent} fragments written before the close was seen, RSS +${mib(rssGrowth)} MiB`)
})

test('a ping flood from a client that never reads the pongs is terminated by ws (60 pongs waiting) with bounded memory', async (t) => {
  const { app, raw, closeCodes, errors } = await frameApp(t)
  const client = await raw()
  client.socket.pause() // never reads: the server's pongs pile up
  await fullGc()
  const rssBefore = process.memoryUsage().rss
  const ping = frame({ opcode: 9, payload: Buffer.alloc(125, 0x70) })
  const batch = Buffer.concat(Array.from({ length: 1000 }, () => ping))
  let sent = 0
  const closed = closedFlag(client)
  const start = performance.now()
  // Flood until the server drops the flooder, for at most 10 s: how many pings that takes depends
  // on the kernel's buffer sizes, not on the hub.
  const deadline = Date.now() + 10_000
  while (!closed() && Date.now() < deadline && !client.socket.destroyed && client.socket.writable) {
    if (!client.write(batch)) {
      await drainOrClose(client, deadline - Date.now())
    }
    sent += 1000
  }
  const elapsed = Math.round(performance.now() - start)
  await waitFor(closed, 1000, 'the socket to close').catch(() => {})
  assert.ok(closed(), `the server did not drop the flooder within 10 s (${sent} pings written)`)
  await waitFor(() => app.hub.onlineCount() === 0, 5000, 'the flooding client to be dropped')
  const rssGrowth = process.memoryUsage().rss - rssBefore
  assert.deepEqual(closeCodes, [1006], 'terminated: no close handshake with a peer that does not read')
  assert.equal(errors.size, 0, 'not a protocol error')
  assert.ok(rssGrowth < 50 * 1024 * 1024, `RSS grew ${mib(rssGrowth)} MiB`)
  t.diagnostic(`flooder dropped after ${elapsed} ms and ${sent} pings written (${mib(sent * ping.length)} MiB); RSS ${rssGrowth >= 0 ? '+' : ''}${mib(rssGrowth)} MiB`)
})

test('an upgrade with 2001 headers is refused (400 when Node drops the handshake headers, 431 where Node refuses that many or that much) and the server keeps serving; ws is >= 8.23.0', async (t) => {
  const { port, url } = await frameApp(t)
  const require = createRequire(import.meta.url)
  const wsVersion: string = require('ws/package.json').version
  const fromPlugin = createRequire(require.resolve('@fastify/websocket'))('ws/package.json').version as string
  for (const version of [wsVersion, fromPlugin]) {
    const [major, minor] = version.split('.').map(Number) as [number, number]
    assert.ok(major > 8 || (major === 8 && minor >= 23), `ws ${version} must be >= 8.23.0`)
  }

  // Short headers, the websocket ones last, under Node's 16 KiB header limit. Node 20 keeps only
  // the first 2000 headers, so ws sees no Upgrade: 400. Node 22.23 refuses a request of more than
  // 1000 headers outright, whatever their size: 431. Refused either way, never upgraded.
  const junk = Array.from({ length: 2001 }, () => 'x: v')
  const standard = upgradeRequest('/ws', `127.0.0.1:${port}`).split('\r\n').slice(1, 7)
  const request = ['GET /ws HTTP/1.1', ...junk, ...standard, '', ''].join('\r\n')
  assert.ok(request.length < 16 * 1024, `${request.length} bytes of short headers`)
  const short = await RawClient.open(port, '/ws', {}, request)
  const shortStatus = await short.response
  assert.ok([400, 431].includes(shortStatus), `short headers answered ${shortStatus}`)
  // Long headers: over Node's 16 KiB header limit.
  const long = await RawClient.open(port, '/ws', {}, upgradeRequest('/ws', `127.0.0.1:${port}`, {}, junk.map(line => `${line}${'v'.repeat(8)}`)))
  assert.equal(await long.response, 431)

  const fresh = await connect(`${url}/ws`)
  assert.equal((await fresh.received(1)).length, 1)
  fresh.socket.close()
  t.diagnostic(`ws ${wsVersion} (the one @fastify/websocket loads: ${fromPlugin}); ${request.length} bytes of short headers: ${shortStatus}, ${junk.length} long headers: 431`)
})

test('permessage-deflate: a compression bomb (8 MiB inflating from a few KiB) gets 1009 and the heap stays bounded', async (t) => {
  const { app, port, received, url } = await frameApp(t, { websocket: { options: { perMessageDeflate: true } } })
  const client = await RawClient.upgrade(port, '/ws', { 'Sec-WebSocket-Extensions': 'permessage-deflate' })
  t.after(() => client.destroy())
  assert.match(client.head, /Sec-WebSocket-Extensions: permessage-deflate/i)
  await client.dataFrames(1)

  const inflated = 8 * 1024 * 1024
  const deflated = deflateRawSync(Buffer.alloc(inflated), { level: 9 })
  // RFC 7692: the sender drops the final empty block's 00 00 FF FF tail.
  const body = deflated.subarray(0, deflated.length - 4)
  assert.ok(body.length < 64 * 1024, `bomb is ${body.length} bytes`)
  const heapBefore = await heapAfterGc()
  const before = process.memoryUsage()
  let peakHeap = 0
  const sampler = setInterval(() => { peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed) }, 1)
  client.write(frame({ opcode: 2, payload: body, rsv: 0b100 }))
  client.mark()
  const close = await client.closed
  clearInterval(sampler)
  const after = process.memoryUsage()
  const heapGrowth = Math.max(peakHeap, after.heapUsed) - before.heapUsed
  const heapAfter = await heapAfterGc()
  assert.equal(close.code, 1009)
  assert.equal(received.length, 0)
  assert.ok(heapGrowth < 16 * 1024 * 1024, `heap grew ${mib(heapGrowth)} MiB`)

  // Compression still works for honest clients.
  const honest = await connect(`${url}/ws`, { perMessageDeflate: true })
  honest.socket.send('a'.repeat(1000))
  await waitFor(() => received.length === 1, 2000, 'the honest compressed message')
  assert.equal(honest.socket.extensions, 'permessage-deflate')
  honest.socket.close()
  assert.equal(app.hub.onlineCount() <= 1, true)
  t.diagnostic(`bomb of ${body.length} bytes: 1009 after ${close.elapsed} ms; peak heap +${mib(heapGrowth)} MiB, after GC ${mib(heapAfter - heapBefore)} MiB, external+arrayBuffers +${mib(after.external + after.arrayBuffers - before.external - before.arrayBuffers)} MiB`)
})

test('a client that sends a close frame after bad data is still closed once, with no second onError', async (t) => {
  const { app, raw, errors } = await frameApp(t)
  const client = await raw()
  client.write(Buffer.concat([frame({ opcode: 1, payload: 'x', rsv: 0b010 }), closeFrame(1000)]))
  assert.equal((await client.closed).code, 1002)
  await waitFor(() => app.hub.onlineCount() === 0, 2000, 'the client to leave')
  assert.deepEqual([...errors.values()].map(list => list.length), [1])
})

test('onClose gets the code ws closed a protocol-breaking client with (1009, 1007, 1002), the one the client saw, not 1006', async (t) => {
  const { closeCodes, raw } = await frameApp(t, { maxPayload: 100 })
  const cases: Array<[string, Buffer, number]> = [
    ['over maxPayload', textFrame('x'.repeat(101)), 1009],
    ['invalid UTF-8', textFrame(Buffer.from([0xff, 0xfe])), 1007],
    ['bad RSV bits', frame({ opcode: 1, payload: 'x', rsv: 0b010 }), 1002]
  ]
  for (const [what, bytes, code] of cases) {
    const before = closeCodes.length
    const client = await raw()
    client.write(bytes)
    assert.equal((await client.closed).code, code, `${what}: the client saw ${code}`)
    await waitFor(() => closeCodes.length > before, 2000, `onClose after ${what}`)
    assert.equal(closeCodes.at(-1), code, `${what}: onClose saw what the client saw`)
  }
})
