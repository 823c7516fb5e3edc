import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import Fastify from 'fastify'
import fastifyWsHub from '../dist/index.js'
import { connect, sleep } from './helpers.js'
import { RawClient, upgradeRequest } from './raw-client.js'
import { since } from './probes.js'

function headerDeadlines (app: ReturnType<typeof Fastify>): [number, number] {
  const server = app.server as unknown as { headersTimeout: number, connectionsCheckingInterval: number }
  return [server.headersTimeout, server.connectionsCheckingInterval]
}

test('Fastify and Node alone leave a 60 s header timeout checked every 30 s; the hub tightens them to 5 s and 1 s', async (t) => {
  const bare = Fastify()
  t.after(() => bare.close())
  await bare.ready()
  // Fastify's requestTimeout defaults to 0 (off); Node's headersTimeout is then min(60 s, its own 300 s default).
  assert.equal(bare.server.requestTimeout, 0)
  assert.deepEqual(headerDeadlines(bare), [60_000, 30_000])

  const withHub = Fastify()
  t.after(() => withHub.close())
  await withHub.register(fastifyWsHub, { heartbeat: false })
  assert.deepEqual(headerDeadlines(withHub), [5_000, 1_000])

  const stricter = Fastify({ http: { headersTimeout: 2_000 } })
  t.after(() => stricter.close())
  await stricter.register(fastifyWsHub, { heartbeat: false, headersTimeout: 8_000 })
  assert.deepEqual(headerDeadlines(stricter), [2_000, 1_000], 'a stricter server setting is kept')

  const untouched = Fastify()
  t.after(() => untouched.close())
  await untouched.register(fastifyWsHub, { heartbeat: false, headersTimeout: false })
  assert.deepEqual(headerDeadlines(untouched), [60_000, 30_000], 'headersTimeout: false leaves the server alone')
})

test('with the hub\'s defaults, upgrade headers trickled one byte per second are cut within 10 s, while a websocket outlives the timeout', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(fastifyWsHub, { heartbeat: false })
  let opened = 0
  app.hub.route({ url: '/ws', onOpen () { opened++ } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const url = `ws://127.0.0.1:${port}`

  const established = await connect(`${url}/ws`)
  const request = upgradeRequest('/ws', `127.0.0.1:${port}`)
  const start = performance.now()
  const slow = await RawClient.open(port, '/ws', {}, '')
  let written = 0
  const trickle = setInterval(() => {
    if (slow.socket.writable && written < request.length) slow.write(request[written++] as string)
  }, 1000)
  t.after(() => clearInterval(trickle))

  await sleep(1500)
  // Others are served meanwhile.
  const fresh = await connect(`${url}/ws`)
  assert.equal((await fresh.received(1)).length, 1)
  fresh.socket.close()

  let timer: NodeJS.Timeout | undefined
  const close = await Promise.race([slow.closed, new Promise<undefined>(resolve => { timer = setTimeout(() => resolve(undefined), 10_000) })])
  clearTimeout(timer)
  const elapsed = since(start)
  clearInterval(trickle)
  assert.ok(close !== undefined, 'the trickling socket was not cut within 10 s')
  assert.ok(elapsed < 10_000)
  assert.equal(slow.status, 408, 'Fastify answers 408 Request Timeout')
  assert.ok(written < request.length, 'the headers never completed')
  assert.equal(opened, 2, 'the trickled upgrade never opened a client')
  assert.equal(established.socket.readyState, established.socket.OPEN)
  assert.equal(app.hub.onlineCount(), 1, 'the websocket opened before is still there, past headersTimeout')
  t.diagnostic(`trickled upgrade cut after ${elapsed} ms (${written} of ${request.length} bytes sent), answered ${slow.status}`)
})
