import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { sleep, waitFor, within } from './helpers.js'
import { implementations, openClient, startHub, startProxy, statusIs } from './client-env.js'

/** The hub's clients' sockets, to terminate from the server side. */
function terminateAll (app: FastifyInstance): void {
  for (const client of app.hub.clients.values()) client.socket.terminate()
}

for (const { name, WebSocket, skip } of implementations) {
  test(`${name}: the server terminates the socket: reconnect, buffered sends flushed in order after the handshake`, { skip }, async (t) => {
    const { app, url } = await startHub(t)
    const { client, statuses } = openClient(t, `${url}/chat`, { WebSocket, reconnect: { initialDelay: 50, maxDelay: 50 } })
    const said: string[] = []
    client.on('said', data => said.push(data.text))
    await statusIs(client, 'open')
    // Sent as the client turns to reconnecting, in that very turn: its backoff has full jitter and
    // may be ~0 ms, so a poll of its status could miss the time it is away.
    let reply: Promise<unknown> | undefined
    client.on('status', status => {
      if (status !== 'reconnecting' || reply !== undefined) return
      for (let i = 0; i < 5; i++) client.send('say', { text: `m${i}` })
      reply = client.request('echo', 'while away')
    })
    terminateAll(app)
    await waitFor(() => reply !== undefined && client.status === 'open', 3000, 'reconnecting, then open again')
    assert.equal(await reply, 'while away')
    await waitFor(() => said.length === 5)
    assert.deepEqual(said, ['m0', 'm1', 'm2', 'm3', 'm4'])
    assert.deepEqual(statuses, ['connecting', 'open', 'reconnecting', 'open'])
  })

  test(`${name}: the server restarts on the same port: reconnect`, { skip }, async (t) => {
    const first = await startHub(t)
    const { client, statuses } = openClient(t, `${first.url}/chat`, { WebSocket })
    await statusIs(client, 'open')
    const pending = assert.rejects(client.request('slow', { ms: 5000 }), { code: 'closed' }, 'a request sent before the disconnection is lost')
    await first.app.close()
    await pending
    await sleep(100) // a few refused connects
    assert.equal(client.status, 'reconnecting')
    await startHub(t, first.port)
    await statusIs(client, 'open')
    assert.deepEqual(await client.request('say', { text: 'back' }), { ok: true })
    assert.deepEqual(statuses, ['connecting', 'open', 'reconnecting', 'open'])
  })

  test(`${name}: network cut by a proxy: reconnect through it`, { skip }, async (t) => {
    const hub = await startHub(t)
    const proxy = await startProxy(t, hub.port)
    const { client, statuses } = openClient(t, `ws://127.0.0.1:${proxy.port}/chat`, { WebSocket })
    await statusIs(client, 'open')
    proxy.cut()
    // The backoff may be a few ms: wait on the statuses seen, not on catching 'reconnecting' live.
    await waitFor(() => statuses.length >= 4, 5000, 'reconnecting, then open again')
    assert.deepEqual(statuses.slice(0, 4), ['connecting', 'open', 'reconnecting', 'open'])
    assert.equal(await client.request('echo', 1), 1)
  })

  test(`${name}: network paused by a proxy then restored: the link goes on, nothing lost`, { skip }, async (t) => {
    const hub = await startHub(t)
    const proxy = await startProxy(t, hub.port)
    const { client, statuses } = openClient(t, `ws://127.0.0.1:${proxy.port}/chat`, { WebSocket })
    await statusIs(client, 'open')
    proxy.pause()
    const reply = client.request('echo', 'across the pause')
    await sleep(100)
    proxy.resume()
    assert.equal(await within(reply, 2000, 'the reply'), 'across the pause')
    assert.deepEqual(statuses, ['connecting', 'open'])
  })

  for (const code of [1000, 1008, 4001]) {
    test(`${name}: a close with ${code} ends the client: no reconnect`, { skip }, async (t) => {
      const { app, url } = await startHub(t)
      const { client, statuses } = openClient(t, `${url}/chat`, { WebSocket })
      await statusIs(client, 'open')
      // The server closes before it could answer: the request is pending at the close
      const pending = assert.rejects(client.request('close', { code }), { code: 'closed' })
      await statusIs(client, 'closed')
      await pending
      await sleep(100)
      assert.equal(app.hub.clients.size, 0)
      assert.deepEqual(statuses, ['connecting', 'open', 'closed'])
    })
  }

  test(`${name}: maxRetries failed connects in a row end the client`, { skip }, async (t) => {
    const { app, url } = await startHub(t)
    await app.close() // the port now refuses
    const { client, statuses } = openClient(t, `${url}/chat`, { WebSocket, reconnect: { initialDelay: 10, maxDelay: 20, maxRetries: 3 } })
    const buffered = assert.rejects(client.request('echo', 1), { code: 'closed' })
    await statusIs(client, 'closed')
    await buffered
    assert.deepEqual(statuses, ['connecting', 'reconnecting', 'closed'])
  })

  test(`${name}: reconnect false: the first disconnection closes`, { skip }, async (t) => {
    const { app, url } = await startHub(t)
    const { client } = openClient(t, `${url}/chat`, { WebSocket, reconnect: false })
    await statusIs(client, 'open')
    terminateAll(app)
    await statusIs(client, 'closed')
  })

  test(`${name}: a full buffer drops the oldest, counted; a dropped request fails with overflow`, { skip }, async (t) => {
    const { url } = await startHub(t)
    const { client } = openClient(t, `${url}/chat`, { WebSocket, bufferSize: 3 })
    const said: string[] = []
    client.on('said', data => said.push(data.text))
    const dropped = assert.rejects(client.request('echo', 'first'), { code: 'overflow' })
    for (let i = 0; i < 5; i++) client.send('say', { text: `m${i}` })
    assert.equal(client.dropped, 3)
    await dropped
    await waitFor(() => said.length === 3)
    assert.deepEqual(said, ['m2', 'm3', 'm4'])
  })

  test(`${name}: overflow reject: send throws, request rejects, nothing dropped`, { skip }, async (t) => {
    const { url } = await startHub(t)
    const { client } = openClient(t, `${url}/chat`, { WebSocket, bufferSize: 2, overflow: 'reject' })
    client.send('say', { text: 'a' })
    client.send('say', { text: 'b' })
    assert.throws(() => client.send('say', { text: 'c' }), { name: 'HubClientError', code: 'overflow' })
    await assert.rejects(client.request('echo', 1), { code: 'overflow' })
    assert.equal(client.dropped, 0)
    await statusIs(client, 'open')
  })

  test(`${name}: a buffered request that times out is not sent`, { skip }, async (t) => {
    const { app, url } = await startHub(t)
    await app.close()
    const { client } = openClient(t, `${url}/chat`, { WebSocket })
    const seen: unknown[] = []
    await assert.rejects(client.request('echo', 'stale', { timeout: 20 }), { code: 'timeout' })
    await startHub(t, Number(new URL(url).port))
    client.on('message', data => seen.push(data))
    await statusIs(client, 'open')
    assert.equal(await client.request('echo', 'fresh'), 'fresh')
    assert.deepEqual(seen, [])
  })
}
