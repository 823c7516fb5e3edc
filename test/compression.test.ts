import assert from 'node:assert/strict'
import { syncBuiltinESMExports } from 'node:module'
import { test, type TestContext } from 'node:test'
import zlib from 'node:zlib'
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import WebSocket, { type PerMessageDeflateOptions } from 'ws'
import fastifyWsHub, { type FastifyWsHubOptions } from '../dist/index.js'
import { createApp, listen, waitFor } from './helpers.js'
import { prng } from './raw-client.js'

// What the hub compresses, seen through zlib itself: the hub's one-shot deflateRawSync calls
// (ws compresses with deflate streams, never with it). Synced into the ESM bindings dist imports.
const originalDeflateRawSync = zlib.deflateRawSync
const deflateCalls: Array<{ bytes: number, options: zlib.ZlibOptions }> = []
zlib.deflateRawSync = function countedDeflateRawSync (buffer: zlib.InputType, options?: zlib.ZlibOptions): Buffer {
  deflateCalls.push({ bytes: (buffer as Buffer).length, options: options ?? {} })
  return originalDeflateRawSync(buffer, options)
} as typeof zlib.deflateRawSync
syncBuiltinESMExports()

const HELLO = `hello ${'h'.repeat(1500)}`

/** A 2 KB-ish JSON text, compressible as real broadcasts are. */
function jsonText (bytes: number, seed: number): string {
  const items: string[] = []
  let length = 2
  for (let i = 0; length < bytes; i++) {
    const item = JSON.stringify({ id: seed * 1000 + i, user: `user-${(seed + i) % 17}`, text: `message ${i} of ${seed}`, at: 1_700_000_000_000 + i })
    items.push(item)
    length += item.length + 1
  }
  return `[${items.join(',')}]`
}

function randomBytes (length: number, seed: number): Buffer {
  const next = prng(seed)
  const bytes = Buffer.alloc(length)
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(next() * 256)
  return bytes
}

/** One message as a client receives it. */
interface Received { data: Buffer, binary: boolean }

const text = (value: string): Received => ({ data: Buffer.from(value), binary: false })
const binary = (value: Buffer): Received => ({ data: value, binary: true })

/** A ws client that records, in arrival order, what it receives and the pings among it. */
interface Peer {
  name: string
  socket: WebSocket
  /** The server's `Sec-WebSocket-Extensions` answer; '' when it negotiated none. */
  answer: string
  messages: Received[]
  pings: number
  closed: Promise<{ code: number, reason: string }>
}

async function open (url: string, name: string, perMessageDeflate: boolean | PerMessageDeflateOptions): Promise<Peer> {
  const socket = new WebSocket(`${url}/ws?name=${name}`, { perMessageDeflate })
  const peer: Peer = { name, socket, answer: '', messages: [], pings: 0, closed: Promise.resolve({ code: 0, reason: '' }) }
  socket.on('upgrade', (response) => { peer.answer = response.headers['sec-websocket-extensions'] ?? '' })
  socket.on('message', (data, isBinary) => { peer.messages.push({ data: data as Buffer, binary: isBinary }) })
  socket.on('ping', () => { peer.pings++ })
  socket.on('error', () => {})
  peer.closed = new Promise(resolve => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  return peer
}

/** A hub with one route whose clients are named by their query, with the heartbeat on. */
async function hubApp (t: TestContext, perMessageDeflate: boolean | PerMessageDeflateOptions, options: FastifyWsHubOptions = {}) {
  const app = await createApp(t, {
    handshakeMessage: HELLO,
    // Frequent pings, and never a termination for a late pong on a loaded machine.
    heartbeat: { interval: 30, maxFailures: 1_000_000 },
    readTimeout: 0,
    websocket: { options: { perMessageDeflate } },
    ...options
  })
  app.hub.route({ url: '/ws' })
  return { app, url: await listen(app) }
}

/** The client variants of permessage-deflate a ws client can offer, and no compression at all. */
const OFFERS: Array<[string, boolean | PerMessageDeflateOptions]> = [
  ['plain', false],
  ['default-offer', true],
  ['client-no-context-takeover', { clientNoContextTakeover: true }],
  ['offers-server-no-context-takeover', { serverNoContextTakeover: true }],
  ['client-max-window-bits-10', { clientMaxWindowBits: 10 }],
  ...[9, 10, 11, 12, 13, 14, 15].map((bits): [string, PerMessageDeflateOptions] => [`server-max-window-bits-${bits}`, { serverMaxWindowBits: bits }])
]

/**
 * Sends the same script to every client of `app`: broadcasts and sends (text and binary, below
 * and above the threshold, over 64 KiB) in three rounds, each in one turn; between two rounds
 * every peer gets a heartbeat ping; the last round closes every client. What each peer must get.
 */
async function runScript (app: Awaited<ReturnType<typeof hubApp>>['app'], peers: Peer[]): Promise<Map<string, Received[]>> {
  const expected = new Map(peers.map(peer => [peer.name, [text(HELLO)]]))
  const broadcast = (message: Received): void => {
    app.hub.broadcast(message.binary ? message.data : message.data.toString())
    for (const list of expected.values()) list.push(message)
  }
  const sendEach = (make: (name: string) => Received): void => {
    for (const client of app.hub.clients.values()) {
      const name = (client.request.query as { name: string }).name
      const message = make(name)
      client.send(message.binary ? message.data : message.data.toString())
      expected.get(name)?.push(message)
    }
  }
  const rounds: Array<() => void> = [
    () => {
      broadcast(text('small'))
      broadcast(text(jsonText(2048, 1)))
      sendEach(name => text(`direct to ${name}`))
      broadcast(binary(Buffer.from([0, 1, 2, 0xff])))
      broadcast(binary(Buffer.concat([Buffer.alloc(3000, 0x61), randomBytes(200, 2)])))
      sendEach(name => text(jsonText(5000, name.length)))
    },
    () => {
      broadcast(text('b'.repeat(1023)))
      broadcast(text('c'.repeat(1024)))
      broadcast(text(`${jsonText(3000, 3)} ünïcødé ✓ 🚀`))
      broadcast(text(jsonText(100_000, 4)))
      broadcast(binary(randomBytes(80_000, 5)))
      sendEach(name => binary(Buffer.from(name)))
    },
    () => {
      broadcast(text(jsonText(70_000, 6)))
      broadcast(text('last'))
      for (const client of app.hub.clients.values()) client.close(1000, 'done')
    }
  ]
  for (const [index, round] of rounds.entries()) {
    if (index > 0) {
      const before = new Map(peers.map(peer => [peer.name, peer.pings]))
      await waitFor(() => peers.every(peer => peer.pings > (before.get(peer.name) ?? 0)), 5000, 'a heartbeat ping to every peer')
    }
    round()
  }
  return expected
}

async function assertReceived (peers: Peer[], expected: Map<string, Received[]>): Promise<void> {
  for (const peer of peers) {
    const close = await peer.closed
    assert.deepEqual(close, { code: 1000, reason: 'done' }, `${peer.name} closed normally, after every message`)
    const want = expected.get(peer.name) ?? []
    assert.equal(peer.messages.length, want.length, `${peer.name}: message count`)
    for (const [index, message] of want.entries()) {
      const got = peer.messages[index]
      assert.equal(got?.binary, message.binary, `${peer.name}: message ${index} binary flag`)
      assert.ok(got?.data.equals(message.data), `${peer.name}: message ${index} byte for byte (${got?.data.length} bytes, expected ${message.data.length})`)
    }
  }
}

test('every negotiated variant, mixed with uncompressed clients, gets every message byte for byte and in order, with sends, pings and a close between them', async (t) => {
  const { app, url } = await hubApp(t, true)
  const peers: Peer[] = []
  for (const [name, offer] of OFFERS) peers.push(await open(url, name, offer))
  await waitFor(() => app.hub.onlineCount() === peers.length && peers.every(peer => peer.messages.length === 1), 2000, 'every client greeted')
  for (const peer of peers) {
    if (peer.name === 'plain') {
      assert.equal(peer.answer, '')
      continue
    }
    // The hub's default: the server asks for no context takeover, whether the client offered it or not.
    assert.match(peer.answer, /^permessage-deflate;.*server_no_context_takeover/, peer.name)
    const bits = /server-max-window-bits-(\d+)/.exec(peer.name)?.[1]
    if (bits !== undefined) assert.match(peer.answer, new RegExp(`server_max_window_bits=${bits}(;|$)`), peer.name)
  }
  const expected = await runScript(app, peers)
  await assertReceived(peers, expected)
  t.diagnostic(`${peers.length} clients, ${expected.get('plain')?.length} messages each; zlib calls of the hub: ${deflateCalls.length}`)
})

test('a broadcast is compressed once per profile (window size), only from the threshold on, and not at all without a compressed receiver', async (t) => {
  const { app, url } = await hubApp(t, { zlibDeflateOptions: { level: 1, memLevel: 7 }, threshold: 100 }, { handshakeMessage: false })
  const plain = await open(url, 'plain', false)
  await waitFor(() => app.hub.onlineCount() === 1)
  deflateCalls.length = 0
  app.hub.broadcast('x'.repeat(5000))
  assert.equal(deflateCalls.length, 0, 'no compressed receiver: nothing compressed')

  const peers = [plain]
  for (const [name, offer] of [['a15', true], ['b15', { clientNoContextTakeover: true }], ['c12', { serverMaxWindowBits: 12 }], ['d12', { serverMaxWindowBits: 12 }], ['e9', { serverMaxWindowBits: 9 }]] as const) {
    peers.push(await open(url, name, offer))
  }
  await waitFor(() => app.hub.onlineCount() === peers.length)
  deflateCalls.length = 0
  app.hub.broadcast('y'.repeat(99))
  assert.equal(deflateCalls.length, 0, 'below the threshold: sent uncompressed')
  app.hub.broadcast('z'.repeat(100))
  const windows = (): number[] => deflateCalls.map(call => call.options.windowBits ?? 0).sort((a, b) => a - b)
  assert.deepEqual(windows(), [9, 12, 15], 'one compression per window size')
  for (const call of deflateCalls) {
    assert.equal(call.options.level, 1, 'the server\'s zlib level')
    assert.equal(call.options.memLevel, 7, 'the server\'s zlib memLevel')
  }
  deflateCalls.length = 0
  const a15 = [...app.hub.clients.values()].find(client => (client.request.query as { name: string }).name === 'a15')
  a15?.send('w'.repeat(2000))
  assert.deepEqual(windows(), [15], 'a send compresses for its one receiver')
  app.hub.broadcast('v'.repeat(2000), { except: a15?.id })
  assert.deepEqual(windows(), [9, 12, 15, 15], 'the broadcast: once per window size, the send\'s receiver excepted')
  const summary = (peer: Peer): string[] => peer.messages.map(message => `${message.data.toString().slice(0, 1)}${message.data.length}`)
  await waitFor(() => peers.every(peer => peer.messages.length === (peer === plain ? 4 : 3)), 2000, 'every message')
  for (const peer of peers) {
    const last = peer.name === 'a15' ? 'w2000' : 'v2000'
    assert.deepEqual(summary(peer), [...(peer === plain ? ['x5000'] : []), 'y99', 'z100', last], peer.name)
    assert.ok(peer.messages.every(message => /^(.)\1*$/.test(message.data.toString())), `${peer.name}: contents intact`)
  }
  t.diagnostic(`compressions for one send and one broadcast to 3 profiles: ${deflateCalls.length}`)
})

test('serverNoContextTakeover: false keeps ws\'s per-socket deflate (context takeover): same messages, in order, nothing compressed by the hub', async (t) => {
  const { app, url } = await hubApp(t, { serverNoContextTakeover: false })
  const peers: Peer[] = []
  for (const [name, offer] of OFFERS) {
    // ws refuses the upgrade (400) of a client whose only offer asks for server_no_context_takeover
    // when the server keeps its context.
    if (name === 'offers-server-no-context-takeover') await assert.rejects(open(url, name, offer), /400/)
    else peers.push(await open(url, name, offer))
  }
  await waitFor(() => app.hub.onlineCount() === peers.length && peers.every(peer => peer.messages.length === 1), 2000, 'every client greeted')
  for (const peer of peers) {
    if (peer.name !== 'plain') assert.doesNotMatch(peer.answer, /server_no_context_takeover/, peer.name)
  }
  deflateCalls.length = 0
  const expected = await runScript(app, peers)
  await assertReceived(peers, expected)
  assert.equal(deflateCalls.length, 0, 'ws compressed every message itself')
})

test('a compressed message that inflates past maxPayload still closes its client with 1009; one within it arrives', async (t) => {
  const received: number[] = []
  const app = await createApp(t, { handshakeMessage: false, maxPayload: 65_535, websocket: { options: { perMessageDeflate: true } } })
  app.hub.route({ url: '/ws', onMessage (_client, data) { received.push(Buffer.byteLength(data)) } })
  const url = await listen(app)
  const honest = await open(url, 'honest', true)
  const bomb = await open(url, 'bomb', true)
  assert.match(bomb.answer, /server_no_context_takeover/)
  honest.socket.send('a'.repeat(65_535))
  await waitFor(() => received.length === 1, 2000, 'the message of exactly maxPayload bytes')
  bomb.socket.send('a'.repeat(200_000))
  assert.equal((await bomb.closed).code, 1009)
  assert.deepEqual(received, [65_535])
  assert.equal(honest.socket.readyState, WebSocket.OPEN)
  honest.socket.close()
})

test('a @fastify/websocket registered before the hub keeps its options: shared compression with serverNoContextTakeover, ws\'s own (and a warning) without', async (t) => {
  for (const perMessageDeflate of [{ serverNoContextTakeover: true }, true] as const) {
    const warnings: string[] = []
    const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(line) } } } })
    t.after(() => app.close())
    await app.register(fastifyWebsocket, { options: { perMessageDeflate } })
    await app.register(fastifyWsHub, { heartbeat: false, handshakeMessage: false })
    app.hub.route({ url: '/ws' })
    const url = await listen(app)
    const peer = await open(url, 'one', true)
    await waitFor(() => app.hub.onlineCount() === 1)
    deflateCalls.length = 0
    app.hub.broadcast(jsonText(2048, 7))
    await waitFor(() => peer.messages.length === 1)
    assert.equal(peer.messages[0]?.data.toString(), jsonText(2048, 7))
    const shared = perMessageDeflate !== true
    assert.equal(deflateCalls.length, shared ? 1 : 0)
    assert.equal(/server_no_context_takeover/.test(peer.answer), shared)
    assert.equal(warnings.some(line => line.includes('serverNoContextTakeover')), !shared)
    peer.socket.close()
    await app.close()
  }
})

test.after(() => {
  zlib.deflateRawSync = originalDeflateRawSync
  syncBuiltinESMExports()
})

test('the handshake answer is read as ws writes it, and whatever it cannot share is left to ws', async () => {
  const { SharedDeflate, deflateParams, withSharedDeflate } = await import('../dist/deflate.js')
  assert.deepEqual(deflateParams(' permessage-deflate; server_no_context_takeover; server_max_window_bits="10"'),
    new Map<string, string | true>([['server_no_context_takeover', true], ['server_max_window_bits', '10']]))
  assert.deepEqual(deflateParams('x-other; a=1, permessage-deflate'), new Map())
  assert.equal(deflateParams('x-other; a=1'), undefined)

  const shared = new SharedDeflate({ threshold: 0 })
  const answer = (extensions: string | undefined): ReturnType<typeof shared.take> => {
    const request = {} as Parameters<typeof shared.take>[0]
    const headers = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', ...(extensions === undefined ? [] : [`Sec-WebSocket-Extensions: ${extensions}`])]
    shared.noteHandshake(headers, request)
    return shared.take(request)
  }
  const ten = answer('permessage-deflate; server_no_context_takeover; server_max_window_bits=10')
  assert.ok(typeof ten === 'object' && ten.windowBits === 10 && ten.threshold === 0)
  assert.equal(answer('permessage-deflate; server_max_window_bits=10; server_no_context_takeover'), ten, 'one profile per window size')
  assert.equal(answer('permessage-deflate; server_no_context_takeover; server_max_window_bits=16'), 'per-socket')
  assert.equal(answer('permessage-deflate'), 'per-socket', 'context takeover')
  assert.equal(answer(undefined), 'per-socket', 'no answer seen')

  assert.deepEqual(withSharedDeflate(true), { serverNoContextTakeover: true })
  assert.deepEqual(withSharedDeflate({ threshold: 10 }), { threshold: 10, serverNoContextTakeover: true })
  assert.deepEqual(withSharedDeflate({ serverNoContextTakeover: false }), { serverNoContextTakeover: false })
  assert.equal(withSharedDeflate(false), false)
  assert.equal(withSharedDeflate(undefined), undefined)
})
