import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WebsocketHandshakeSuccess } from '../dist/index.js'
import { HubClientError } from '../dist/client/index.js'
import { DEFAULT_HANDSHAKE } from '../dist/client/options.js'
import { waitFor, within } from './helpers.js'
import { implementations, openClient, startHub, statusIs } from './client-env.js'

test('the default handshake is the hub\'s own handshake message', () => {
  assert.equal(DEFAULT_HANDSHAKE, WebsocketHandshakeSuccess)
})

for (const { name, WebSocket, skip } of implementations) {
  test(`${name}: connecting, then open once the handshake arrived; the handshake is not delivered`, { skip }, async (t) => {
    const { url } = await startHub(t)
    const { client, statuses } = openClient(t, `${url}/chat`, { WebSocket })
    const raw: unknown[] = []
    client.on('message', data => raw.push(data))
    assert.equal(client.status, 'connecting')
    await statusIs(client, 'open')
    client.close()
    assert.equal(client.status, 'closed')
    assert.deepEqual(statuses, ['connecting', 'open', 'closed'])
    assert.deepEqual(raw, [])
  })

  test(`${name}: typed send, request with its reply, events`, { skip }, async (t) => {
    const { url } = await startHub(t)
    const { client } = openClient(t, `${url}/chat`, { WebSocket })
    const said: unknown[] = []
    const off = client.on('said', data => said.push(data))
    client.send('say', { text: 'sent before open' })
    assert.deepEqual(await client.request('say', { text: 'hello' }), { ok: true })
    assert.deepEqual(await client.request('echo', [1, 'two']), [1, 'two'])
    await waitFor(() => said.length === 2)
    assert.deepEqual(said, [{ text: 'sent before open' }, { text: 'hello' }])
    off()
    const raw: unknown[] = []
    client.on('message', data => raw.push(data))
    await client.request('say', { text: 'nobody listens' })
    await waitFor(() => raw.length === 1)
    assert.deepEqual(raw, ['{"type":"said","data":{"text":"nobody listens"}}'], 'an event without listener is a raw message')
  })

  test(`${name}: an error frame rejects the request with its code; one without a request goes to on('error')`, { skip }, async (t) => {
    const { url } = await startHub(t)
    const { client } = openClient(t, `${url}/chat`, { WebSocket })
    await assert.rejects(client.request('fail', { code: 'room_full' }), (error: unknown) => {
      assert.ok(error instanceof HubClientError)
      assert.equal(error.code, 'room_full')
      assert.equal(error.message, 'failed with room_full')
      return true
    })
    await assert.rejects(client.request('say', { text: '' }), { name: 'HubClientError', code: 'invalid_data' })
    const errors: HubClientError[] = []
    client.on('error', error => errors.push(error))
    client.send('say', { text: '' })
    await waitFor(() => errors.length === 1)
    assert.equal(errors[0]?.code, 'invalid_data')
  })

  test(`${name}: a request without a reply in time rejects with timeout`, { skip }, async (t) => {
    const { url } = await startHub(t)
    const { client } = openClient(t, `${url}/chat`, { WebSocket, requestTimeout: 30 })
    await assert.rejects(client.request('slow', { ms: 500 }), { code: 'timeout' })
    await assert.rejects(client.request('slow', { ms: 500 }, { timeout: 20 }), { code: 'timeout', message: 'no reply within 20 ms' })
    // The hub handles one message of a client at a time: this reply comes after both late ones, ignored
    assert.equal(await client.request('slow', { ms: 1 }, { timeout: 3000 }), 1)
  })

  test(`${name}: untyped route: raw text and binary through send and on('message')`, { skip }, async (t) => {
    const { url } = await startHub(t)
    const { client } = openClient<unknown>(t, `${url}/raw`, { WebSocket })
    const raw: Array<string | ArrayBuffer> = []
    client.on('message', data => raw.push(data))
    client.send('hi')
    client.send('{"type":"said","data":1}')
    client.send(new Uint8Array([1, 2, 3]))
    await waitFor(() => raw.length === 3)
    assert.equal(raw[0], 'echo:hi')
    assert.equal(raw[1], 'echo:{"type":"said","data":1}')
    assert.ok(raw[2] instanceof ArrayBuffer)
    assert.deepEqual([...new Uint8Array(raw[2])], [1, 2, 3])
  })

  test(`${name}: pending requests are rejected on close; nothing is sent after`, { skip }, async (t) => {
    const { url } = await startHub(t)
    const { client } = openClient(t, `${url}/chat`, { WebSocket })
    await statusIs(client, 'open')
    const sent = client.request('slow', { ms: 500 })
    const buffered = client.request('slow', { ms: 500 })
    client.close(1000, 'bye')
    await within(Promise.all([
      assert.rejects(sent, { code: 'closed' }),
      assert.rejects(buffered, { code: 'closed' })
    ]), 1000, 'rejections')
    await assert.rejects(client.request('say', { text: 'late' }), { code: 'closed' })
    assert.throws(() => client.send('say', { text: 'late' }), { code: 'closed' })
    client.close()
    assert.equal(client.status, 'closed')
  })
}
