import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createClient, HubClientError, type ClientStatus, type WebSocketConstructor } from '../dist/client/index.js'
import { backoffDelay } from '../dist/client/backoff.js'
import { waitFor } from './helpers.js'
import { openClient, startHub, statusIs } from './client-env.js'

test('backoff: full jitter below min(maxDelay, initialDelay * 2^attempt)', () => {
  assert.equal(backoffDelay(0, 500, 30_000, () => 0), 0)
  assert.equal(backoffDelay(0, 500, 30_000, () => 1), 500)
  assert.equal(backoffDelay(3, 500, 30_000, () => 1), 4000)
  assert.equal(backoffDelay(3, 500, 30_000, () => 0.5), 2000)
  assert.equal(backoffDelay(10, 500, 30_000, () => 1), 30_000)
  for (let attempt = 0; attempt < 20; attempt++) {
    const delay = backoffDelay(attempt, 500, 30_000)
    assert.ok(delay >= 0 && delay <= Math.min(30_000, 500 * 2 ** attempt))
  }
})

test('a handshake given as text or as a test; none at all with false', async (t) => {
  const hello = await startHub(t, 0, { handshakeMessage: 'hello' })
  const byText = openClient(t, `${hello.url}/chat`, { handshake: 'hello' }).client
  const byTest = openClient(t, `${hello.url}/chat`, { handshake: text => text.startsWith('hel') }).client
  await statusIs(byText, 'open')
  await statusIs(byTest, 'open')
  const silent = await startHub(t, 0, { handshakeMessage: false })
  const { client } = openClient(t, `${silent.url}/chat`, { handshake: false })
  await statusIs(client, 'open')
  assert.deepEqual(await client.request('echo', 'no handshake'), 'no handshake')
})

test('frames that are not typed frames are raw messages', async (t) => {
  const { url } = await startHub(t)
  const { client } = openClient<unknown>(t, `${url}/raw`)
  const raw: unknown[] = []
  client.on('message', data => raw.push(data))
  for (const text of ['{not json', '{"no":"type"}', '[1]', '{"type":"said","id":99,"data":1}']) client.send(`raw:${text}`)
  const errors: HubClientError[] = []
  client.on('error', error => errors.push(error))
  client.send('raw:{"type":"error","id":42,"error":{"code":"late","message":"for no request"}}')
  await waitFor(() => raw.length === 4 && errors.length === 1)
  assert.deepEqual(raw, ['{not json', '{"no":"type"}', '[1]', '{"type":"said","id":99,"data":1}'])
  assert.ok(errors[0] instanceof HubClientError)
  assert.deepEqual([errors[0].code, errors[0].message], ['late', 'for no request'])
})

test('no WebSocket at all is an error at once', (t) => {
  const global = globalThis as { WebSocket?: unknown }
  const saved = global.WebSocket
  t.after(() => { global.WebSocket = saved })
  global.WebSocket = undefined
  assert.throws(() => createClient('ws://127.0.0.1:1/chat'), { name: 'TypeError', message: /pass the WebSocket option/ })
})

test('a constructor that throws is a failed connect: retried, then closed', async () => {
  let calls = 0
  const Failing = class {
    constructor () {
      calls++
      throw new SyntaxError('bad url')
    }
  } as unknown as WebSocketConstructor
  const statuses: ClientStatus[] = []
  const client = createClient('not a url', { WebSocket: Failing, reconnect: { initialDelay: 1, maxRetries: 2 } })
  client.on('status', status => statuses.push(status))
  await statusIs(client, 'closed')
  assert.equal(calls, 3)
  assert.deepEqual(statuses, ['closed'])
  assert.equal(client.status, 'closed')
})

test('an unsubscribed listener hears nothing; a failing listener stops neither the others nor the client', async (t) => {
  const { url } = await startHub(t)
  const { client } = openClient(t, `${url}/chat`)
  const heard: string[] = []
  const off = client.on('said', data => heard.push(`off:${data.text}`))
  client.on('said', () => { throw new Error('listener bug') })
  client.on('said', data => heard.push(data.text))
  off()
  t.mock.timers.enable({ apis: ['setTimeout'] })
  t.after(() => t.mock.timers.reset())
  await client.request('say', { text: 'hi' })
  await waitFor(() => heard.length === 1)
  assert.deepEqual(heard, ['hi'])
  assert.throws(() => t.mock.timers.tick(1), /listener bug/, 'the error is thrown apart, not swallowed')
})

test('a buffer of size 0 keeps nothing: every send while away is dropped', async (t) => {
  const { url } = await startHub(t)
  const { client } = openClient(t, `${url}/chat`, { bufferSize: 0 })
  client.send('say', { text: 'lost' })
  await assert.rejects(client.request('echo', 1), { code: 'overflow' })
  assert.equal(client.dropped, 2)
  await statusIs(client, 'open')
  assert.equal(await client.request('echo', 2), 2)
})

test('closed while still connecting: closed at once, quietly', async (t) => {
  const { app, url } = await startHub(t)
  const { client, statuses } = openClient(t, `${url}/chat`)
  client.close()
  assert.deepEqual(statuses, ['connecting', 'closed'])
  await new Promise(resolve => setTimeout(resolve, 50))
  assert.equal(client.status, 'closed')
  assert.equal(app.hub.clients.size, 0)
})
