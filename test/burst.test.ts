import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { connect, createApp, listen, stopReading, waitFor, type TestClient } from './helpers.js'
import type { FastifyWsHubOptions } from '../dist/index.js'

const BURST = 2000
const KIB = Buffer.alloc(1024, 0x62).toString()

/** A hub whose route runs `onOpen` for every client, and one connected client. */
async function burstApp (t: Parameters<typeof createApp>[0], hubOptions: FastifyWsHubOptions, onOpen: (app: FastifyInstance, send: (data: string) => boolean) => void, clientOptions = {}) {
  const app = await createApp(t, { handshakeMessage: false, ...hubOptions })
  app.hub.route({ url: '/ws', onOpen (client) { onOpen(app, data => client.send(data)) } })
  const url = await listen(app)
  const client = await connect(`${url}/ws`, clientOptions)
  t.after(() => client.socket.terminate())
  return { app, client }
}

for (const compression of [false, true]) {
  const variant = compression ? 'with permessage-deflate' : 'uncompressed'
  test(`a burst of ${BURST} sends of 1 KiB in one turn reaches a client that reads (${variant}): nothing dropped`, async (t) => {
    let refused = 0
    const { app, client } = await burstApp(t, compression ? { websocket: { options: { perMessageDeflate: true } } } : {}, (_app, send) => {
      for (let i = 0; i < BURST; i++) if (!send(`${i}:${KIB}`)) refused++
    }, { perMessageDeflate: compression })
    assert.equal(client.socket.extensions.length > 0, compression)
    await client.received(BURST, 10_000)
    assert.equal(refused, 0, 'send() returned false')
    assert.equal(app.hub.stats().dropped, 0)
    assert.ok(client.messages.every((message, i) => message.startsWith(`${i}:`)), 'in order')
    t.diagnostic(`${BURST} of ${BURST} received; stats().dropped ${app.hub.stats().dropped}`)
  })
}

test(`${BURST} broadcasts of 1 KiB in one turn reach every reading client, with and without permessage-deflate`, async (t) => {
  const app = await createApp(t, { handshakeMessage: false, websocket: { options: { perMessageDeflate: true } } })
  app.hub.route({ url: '/ws' })
  const url = await listen(app)
  const clients: TestClient[] = []
  for (let i = 0; i < 3; i++) clients.push(await connect(`${url}/ws`, { perMessageDeflate: i === 0 }))
  assert.ok(clients[0]?.socket.extensions.includes('permessage-deflate'))
  t.after(() => { for (const client of clients) client.socket.terminate() })
  await waitFor(() => app.hub.onlineCount() === 3)
  let written = 0
  for (let i = 0; i < BURST; i++) written += app.hub.broadcast(`${i}:${KIB}`)
  assert.equal(written, 3 * BURST)
  for (const client of clients) await client.received(BURST, 10_000)
  assert.equal(app.hub.stats().dropped, 0)
})

test('a client that does not read still holds at most maxBufferedBytes + maxBurstBytes of unsent bytes, then is skipped', async (t) => {
  const maxBufferedBytes = 64 * 1024
  const maxBurstBytes = 256 * 1024
  const message = Buffer.alloc(16 * 1024, 0x63).toString()
  let peak = 0
  let refused = 0
  let sendOne: (() => boolean) | undefined
  let unsent: (() => number) | undefined
  const app = await createApp(t, { handshakeMessage: false, maxBufferedBytes, maxBurstBytes })
  app.hub.route({
    url: '/ws',
    onOpen (client) {
      sendOne = () => client.send(message)
      unsent = () => client.socket.bufferedAmount
    }
  })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  t.after(() => client.socket.terminate())
  stopReading(client, { deaf: true })
  await waitFor(() => sendOne !== undefined)
  const send = sendOne as () => boolean
  const buffered = unsent as () => number
  // Bursts of 8 MiB per turn, until the kernel buffers are full and one whole turn was refused.
  const deadline = Date.now() + 10_000
  let wholeTurnRefused = false
  while (!wholeTurnRefused && Date.now() < deadline) {
    let accepted = 0
    for (let i = 0; i < 512; i++) {
      if (send()) accepted++
      else refused++
      peak = Math.max(peak, buffered())
    }
    wholeTurnRefused = accepted === 0
    await new Promise(resolve => setImmediate(resolve))
  }
  assert.ok(wholeTurnRefused, 'a client over maxBufferedBytes at the start of a turn is skipped for the turn')
  assert.ok(refused > 0)
  assert.equal(app.hub.stats().dropped, refused)
  assert.ok(peak <= maxBufferedBytes + maxBurstBytes + message.length, `unsent bytes peaked at ${peak}`)
  t.diagnostic(`unsent bytes peaked at ${Math.round(peak / 1024)} KiB (bound ${Math.round((maxBufferedBytes + maxBurstBytes) / 1024)} KiB + one message); ${refused} sends refused`)
})

test('a broadcast of caller bytes sends what they held at the call, whatever the caller writes into them later', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  app.hub.route({ url: '/ws' })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  t.after(() => client.socket.terminate())
  await waitFor(() => app.hub.onlineCount() === 1)
  const id = [...app.hub.clients.keys()][0] as string
  for (const size of [100, 20 * 1024, 200 * 1024]) {
    client.messages.length = 0
    const buffer = Buffer.alloc(size)
    const view = new Uint8Array(size)
    const shared = new ArrayBuffer(size)
    for (const letter of 'ABC') {
      buffer.fill(letter)
      app.hub.broadcast(buffer)
      view.fill(letter.charCodeAt(0) + 3)
      app.hub.sendTo(id, view)
      new Uint8Array(shared).fill(letter.charCodeAt(0) + 6)
      app.hub.clients.get(id)?.send(shared)
    }
    buffer.fill('Z')
    view.fill(0x5a)
    new Uint8Array(shared).fill(0x5a)
    const got = await client.received(9, 5000)
    const firstBytes = got.map(message => String.fromCharCode(parseInt(message.slice('binary:'.length, 'binary:'.length + 2), 16)))
    assert.deepEqual(firstBytes, ['A', 'D', 'G', 'B', 'E', 'H', 'C', 'F', 'I'], `${size} bytes`)
    assert.ok(got.every(message => message.length === 'binary:'.length + 2 * size))
    for (const message of got) assert.equal(message.slice(7), message.slice(7, 9).repeat(size), 'every byte as at the call')
  }
})
