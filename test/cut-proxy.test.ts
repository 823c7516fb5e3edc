// The cut proxy's own checks, against a plain `ws` server (not the hub): what the client sees, what
// the server sees, and that nothing leaks between them once the network is cut.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { test, type TestContext } from 'node:test'
import WebSocket, { WebSocketServer } from 'ws'
import { startCutProxy, type CutProxy } from './cut-proxy.js'

// Local waits rather than helpers.ts, whose import of dist/ would tie these checks to the build.
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `condition` every 5 ms; rejects after `timeoutMs`, naming `what`. */
async function waitFor (condition: () => boolean, timeoutMs = 2000, what = 'condition'): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

/** `promise`, or a rejection naming `what` after `timeoutMs`. */
async function within<T> (promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** A ws server on a free loopback port, whose sockets are recorded as they connect. */
interface EchoServer {
  port: number
  server: WebSocketServer
  /** Every server-side socket, in connection order. */
  sockets: WebSocket[]
  /** The server-side socket of the `index`th connection, once it is there. */
  socket (index: number): Promise<WebSocket>
}

/** Starts a ws server that echoes `echo:<text>` and tags every socket with `name`; closed after the test. */
async function startServer (t: TestContext, name: string): Promise<EchoServer> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false })
  const sockets: WebSocket[] = []
  server.on('connection', (socket) => {
    sockets.push(socket)
    socket.on('error', () => {})
    socket.on('message', (data) => socket.send(`${name}:${String(data)}`))
  })
  await once(server, 'listening')
  t.after(async () => {
    for (const socket of server.clients) socket.terminate()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const { port } = server.address() as AddressInfo
  return {
    port,
    server,
    sockets,
    async socket (index) {
      await waitFor(() => sockets.length > index, 2000, `server connection ${index}`)
      return sockets[index] as WebSocket
    }
  }
}

/** A client through the proxy, with what it received and how it closed. */
interface ProxiedClient {
  socket: WebSocket
  messages: string[]
  closed: Promise<number>
}

/** Opens a client to the proxy; rejects if the connection fails before the upgrade. */
async function openClient (proxy: CutProxy): Promise<ProxiedClient> {
  const socket = new WebSocket(`ws://127.0.0.1:${proxy.port}/`, { perMessageDeflate: false })
  const messages: string[] = []
  socket.on('message', (data) => messages.push(String(data)))
  const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)))
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  socket.on('error', () => {})
  return { socket, messages, closed }
}

/** Tries to connect through the proxy: 'open', or 'failed' with the close code and the socket error. */
async function attempt (proxy: CutProxy): Promise<{ outcome: 'open' | 'failed', code?: number, error?: string }> {
  const socket = new WebSocket(`ws://127.0.0.1:${proxy.port}/`, { perMessageDeflate: false })
  let error: string | undefined
  // events.once would reject on the 'error' that precedes the close: plain listeners instead
  socket.on('error', (cause: NodeJS.ErrnoException) => { error = cause.code ?? cause.message })
  const result = await new Promise<'open' | number>((resolve) => {
    socket.once('open', () => resolve('open'))
    socket.once('close', (code) => resolve(code))
  })
  if (result === 'open') {
    socket.terminate()
    return { outcome: 'open' }
  }
  return { outcome: 'failed', code: result, error }
}

/** Starts a proxy to `port`, closed after the test. */
async function proxyTo (t: TestContext, port: number): Promise<CutProxy> {
  const proxy = await startCutProxy(port)
  t.after(() => proxy.close())
  return proxy
}

test('cut proxy: forwards both ways while not cut', async (t) => {
  const a = await startServer(t, 'a')
  const proxy = await proxyTo(t, a.port)
  const client = await openClient(proxy)
  client.socket.send('hello')
  await waitFor(() => client.messages.length === 1)
  assert.deepEqual(client.messages, ['a:hello'])
  assert.equal(proxy.connections.length, 1)
  assert.equal(proxy.connections[0]?.state, 'open')
  assert.equal(proxy.connections[0]?.targetPort, a.port)
})

test('cut proxy: cut gives the client 1006 and keeps the server side open, silent and black-holed', async (t) => {
  const a = await startServer(t, 'a')
  const proxy = await proxyTo(t, a.port)
  const client = await openClient(proxy)
  const server = await a.socket(0)
  let serverClosed = false
  let serverEnded = false
  server.on('close', () => { serverClosed = true })
  const raw = (server as unknown as { _socket: import('node:net').Socket })._socket
  raw.on('end', () => { serverEnded = true })
  const pongs: Buffer[] = []
  server.on('pong', (data) => pongs.push(data))

  proxy.cut()
  assert.equal(await within(client.closed, 2000, 'the client close'), 1006)
  assert.equal(proxy.isCut, true)
  const [link] = proxy.connections
  assert.equal(link?.state, 'blackholed')

  // The server keeps writing; its writes succeed, the proxy discards them, the client gets nothing.
  const written = raw.bytesWritten
  const payload = 'x'.repeat(1000)
  for (let i = 0; i < 50; i++) server.send(payload)
  server.ping('are you there')
  await waitFor(() => (link?.discardedBytes ?? 0) >= 50 * 1000, 2000, 'the writes to be discarded')
  await sleep(200)
  assert.ok(raw.bytesWritten >= written + 50 * 1000, `bytesWritten grew from ${written} to ${raw.bytesWritten}`)
  assert.equal(client.messages.length, 0, 'nothing reached the client')
  assert.deepEqual(pongs, [], 'no pong: only a heartbeat can tell')
  assert.equal(server.readyState, WebSocket.OPEN, 'the server still sees an open socket')
  assert.equal(serverClosed, false)
  assert.equal(serverEnded, false, 'no FIN reached the server')
  assert.equal(raw.destroyed, false)

  // The server's heartbeat gives up: terminating its socket closes the black-holed link.
  server.terminate()
  await waitFor(() => proxy.connections.length === 0, 2000, 'the link to close')
  assert.equal(link?.state, 'closed')
})

test('cut proxy: new connections fail at once while cut, and go through after restore', async (t) => {
  const a = await startServer(t, 'a')
  const proxy = await proxyTo(t, a.port)
  await openClient(proxy)
  proxy.cut()
  for (let i = 0; i < 3; i++) {
    const started = performance.now()
    const failed = await attempt(proxy)
    assert.equal(failed.outcome, 'failed')
    assert.equal(failed.code, 1006)
    assert.equal(failed.error, 'ECONNRESET', 'reset, as a failing network would')
    assert.ok(performance.now() - started < 1000, 'refused at once, not timed out')
  }
  assert.equal(proxy.refused, 3)
  assert.equal(a.sockets.length, 1, 'no refused attempt reached the server')

  proxy.restore()
  assert.equal(proxy.isCut, false)
  const client = await openClient(proxy)
  client.socket.send('back')
  await waitFor(() => client.messages.length === 1)
  assert.deepEqual(client.messages, ['a:back'])
  assert.equal(a.sockets.length, 2)
  assert.deepEqual(proxy.connections.map((link) => link.state), ['blackholed', 'open'], 'the cut link stays black-holed')
})

test('cut proxy: retarget sends new connections to another node, existing ones stay', async (t) => {
  const a = await startServer(t, 'a')
  const b = await startServer(t, 'b')
  const proxy = await proxyTo(t, a.port)
  const first = await openClient(proxy)
  proxy.retarget(b.port)
  assert.equal(proxy.targetPort, b.port)
  const second = await openClient(proxy)
  first.socket.send('1')
  second.socket.send('2')
  await waitFor(() => first.messages.length === 1 && second.messages.length === 1)
  assert.deepEqual([first.messages, second.messages], [['a:1'], ['b:2']])
  assert.deepEqual(proxy.connections.map((link) => link.targetPort), [a.port, b.port])

  // The usual failover: cut, retarget while cut, restore; the reconnection lands on b.
  proxy.cut()
  assert.equal(await first.closed, 1006)
  assert.equal(await second.closed, 1006)
  proxy.retarget(a.port)
  assert.equal((await attempt(proxy)).outcome, 'failed')
  proxy.restore()
  const third = await openClient(proxy)
  third.socket.send('3')
  await waitFor(() => third.messages.length === 1)
  assert.deepEqual(third.messages, ['a:3'])
})

test('cut proxy: the client closing before any cut closes the server side (a plain proxy)', async (t) => {
  const a = await startServer(t, 'a')
  const proxy = await proxyTo(t, a.port)
  const client = await openClient(proxy)
  const server = await a.socket(0)
  client.socket.terminate()
  await once(server, 'close')
  await waitFor(() => proxy.connections.length === 0, 2000, 'the link to close')
})

test('cut proxy: close() destroys every socket, black-holed ones too', async (t) => {
  const a = await startServer(t, 'a')
  const proxy = await startCutProxy(a.port)
  const cutClient = await openClient(proxy)
  proxy.cut()
  await cutClient.closed
  proxy.restore()
  const live = await openClient(proxy)
  const [blackholed, open] = await Promise.all([a.socket(0), a.socket(1)])
  const closes = [once(blackholed, 'close'), once(open, 'close')]
  await proxy.close()
  await within(Promise.all(closes), 2000, 'both server sockets to close')
  assert.equal(await live.closed, 1006)
  assert.equal(proxy.connections.length, 0)
  assert.equal((await attempt(proxy)).outcome, 'failed', 'the listener is closed')
})
