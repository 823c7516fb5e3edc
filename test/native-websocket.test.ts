import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WebsocketHandshakeSuccess } from '../dist/index.js'
import { createApp, listen, waitFor } from './helpers.js'

/** The WHATWG WebSocket that Node 22 and later have built in (undici's): a client written apart from ws. */
const NativeWebSocket = (globalThis as { WebSocket?: typeof WebSocket }).WebSocket

/** A native client that records what it receives and how it closed. */
function nativeClient (url: string) {
  const socket = new (NativeWebSocket as typeof WebSocket)(url)
  socket.binaryType = 'arraybuffer'
  const messages: Array<string | number[]> = []
  socket.addEventListener('message', (event: MessageEvent) => {
    messages.push(typeof event.data === 'string' ? event.data : [...new Uint8Array(event.data as ArrayBuffer)])
  })
  const opened = new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve())
    socket.addEventListener('error', () => reject(new Error('the native client failed to connect')))
  })
  const closed = new Promise<{ code: number, reason: string }>(resolve => {
    socket.addEventListener('close', (event: Event) => { const { code, reason } = event as Event & { code: number, reason: string }; resolve({ code, reason }) })
  })
  return { socket, messages, opened, closed }
}

const skip = NativeWebSocket === undefined ? `Node ${process.version} has no global WebSocket (Node 22 and later do)` : false

test('a client of the WHATWG WebSocket built into Node gets the handshake, echoes, broadcasts, binary frames and the server\'s close code', { skip }, async (t) => {
  const app = await createApp(t)
  const closes: number[] = []
  app.hub.route({
    url: '/ws',
    onMessage (client, data) {
      if (data === 'bye') client.close(4001, 'bye for now')
      else client.send(`echo ${String(data)}`)
    },
    onClose (_client, code) { closes.push(code) }
  })
  const url = await listen(app)
  const client = nativeClient(`${url}/ws`)
  await client.opened
  await waitFor(() => client.messages.length === 1)
  assert.equal(client.messages[0], WebsocketHandshakeSuccess)
  client.socket.send('hello')
  await waitFor(() => client.messages.length === 2)
  assert.equal(client.messages[1], 'echo hello')
  app.hub.broadcast({ to: 'all' })
  app.hub.broadcast(Buffer.from([1, 2, 3]))
  await waitFor(() => client.messages.length === 4)
  assert.deepEqual(client.messages.slice(2), ['{"to":"all"}', [1, 2, 3]])
  client.socket.send('bye')
  assert.deepEqual(await client.closed, { code: 4001, reason: 'bye for now' })
  await waitFor(() => closes.length === 1)
  assert.deepEqual(closes, [4001])
})

test('a native client that closes with a code of its own is seen by onClose with that code; app.close() gives the others 1001', { skip }, async (t) => {
  const app = await createApp(t)
  const closes: number[] = []
  app.hub.route({ url: '/ws', onClose (_client, code) { closes.push(code) } })
  const url = await listen(app)
  const leaving = nativeClient(`${url}/ws`)
  const staying = nativeClient(`${url}/ws`)
  await Promise.all([leaving.opened, staying.opened])
  await waitFor(() => app.hub.onlineCount() === 2)
  leaving.socket.close(4100, 'leaving')
  await waitFor(() => closes.length === 1)
  assert.deepEqual(closes, [4100])
  await app.close()
  assert.equal((await staying.closed).code, 1001)
})
