import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import fastifyWsHub, { Type, type Client } from '../dist/index.js'
import { connect, createApp, listen, namedError, waitFor } from './helpers.js'

function refusal (statusCode: number, message: string): Error {
  return Object.assign(new Error(message), { statusCode })
}

test('onUpgrade returns the custom params, checked against the params schema', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  const seen: Array<{ userId: string, level: number }> = []
  app.hub.route({
    url: '/ws',
    schema: { querystring: Type.Object({ token: Type.String({ minLength: 10 }) }) },
    params: Type.Object({ userId: Type.String(), level: Type.Number() }),
    onUpgrade (request) {
      return { userId: `user-of-${request.query.token}`, level: 3 }
    },
    onOpen (client) { seen.push(client.params) }
  })
  const url = await listen(app)
  await connect(`${url}/ws?token=0123456789`)
  await waitFor(() => seen.length === 1)
  assert.deepEqual(seen[0], { userId: 'user-of-0123456789', level: 3 })
})

test('the route schema refuses a short token with 400 before any hook of the hub runs', async (t) => {
  const app = await createApp(t)
  let upgrades = 0
  app.hub.route({
    url: '/ws',
    schema: { querystring: Type.Object({ token: Type.String({ minLength: 10 }) }) },
    onUpgrade () { upgrades++; return {} }
  })
  const url = await listen(app)
  await assert.rejects(connect(`${url}/ws?token=short`), { statusCode: 400 })
  assert.equal(upgrades, 0)
  assert.equal(app.hub.onlineCount(), 0)
})

for (const status of [401, 403, 429]) {
  test(`onUpgrade throwing a ${status} refuses the upgrade with ${status}: nothing registered, no other hook`, async (t) => {
    const app = await createApp(t)
    const hooks: string[] = []
    app.hub.route({
      url: '/ws',
      async onUpgrade () { throw refusal(status, 'refused') },
      onOpen () { hooks.push('open') },
      onClose () { hooks.push('close') },
      onError () { hooks.push('error') }
    })
    const url = await listen(app)
    await assert.rejects(connect(`${url}/ws`), { statusCode: status })
    assert.equal(app.hub.onlineCount(), 0)
    assert.deepEqual(hooks, [])
  })
}

test('onUpgrade throwing an error without a status answers 500', async (t) => {
  const app = await createApp(t, {}, { logger: false })
  app.hub.route({ url: '/ws', onUpgrade () { throw new Error('database down') } })
  const url = await listen(app)
  await assert.rejects(connect(`${url}/ws`), { statusCode: 500 })
})

test('params that do not match the params schema answer 500 (a server bug), nothing registered', async (t) => {
  const app = await createApp(t)
  app.hub.route({
    url: '/ws',
    params: Type.Object({ userId: Type.String() }),
    onUpgrade: () => ({ userId: 42 }) as unknown as { userId: string }
  })
  app.hub.route({ url: '/null', onUpgrade: () => null as unknown as Record<string, never> })
  const url = await listen(app)
  await assert.rejects(connect(`${url}/ws`), { statusCode: 500 })
  await assert.rejects(connect(`${url}/null`), { statusCode: 500 })
  assert.equal(app.hub.onlineCount(), 0)
})

test('without onUpgrade the params are {}', async (t) => {
  const app = await createApp(t)
  let params: object | undefined
  app.hub.route({ url: '/ws', onOpen (client) { params = client.params } })
  const url = await listen(app)
  await connect(`${url}/ws`)
  await waitFor(() => params !== undefined)
  assert.deepEqual(params, {})
})

test('client.request keeps every header as sent, for as many clients as connect, whatever their values', async (t) => {
  const app = await createApp(t)
  const seen: Array<{ headers: Record<string, unknown>, rawHeaders: string[], url: string }> = []
  app.hub.route({
    url: '/ws',
    onOpen (client) {
      // Read later, as a handler would long after the upgrade.
      setImmediate(() => { seen.push({ headers: { ...client.request.headers }, rawHeaders: [...client.request.raw.rawHeaders], url: client.request.url }) })
    }
  })
  const url = await listen(app)
  const sent = [0, 1, 2].map(index => ({ 'User-Agent': 'agent/1.0', 'X-Api-Key': `key-${index}`, 'Accept-Language': 'en', 'X-Note': index === 2 ? 'x'.repeat(300) : 'same' }))
  for (const [index, headers] of sent.entries()) await connect(`${url}/ws?n=${index}`, { headers })
  await waitFor(() => seen.length === 3)
  for (const [index, headers] of sent.entries()) {
    const client = seen.find(entry => entry.url === `/ws?n=${index}`)
    assert.ok(client !== undefined)
    for (const [name, value] of Object.entries(headers)) {
      assert.equal(client.headers[name.toLowerCase()], value, name)
      const at = client.rawHeaders.indexOf(name)
      assert.ok(at !== -1 && client.rawHeaders[at + 1] === value, `raw ${name}`)
    }
  }
})

test('a route inside a child plugin gets its prefix, hooks and decorators', async (t) => {
  const app = await createApp(t)
  const order: string[] = []
  await app.register(async function child (instance) {
    instance.decorateRequest('tenant', 'acme')
    instance.addHook('onRequest', async () => { order.push('plugin onRequest') })
    instance.hub.route({
      url: '/ws',
      preHandler: async () => { order.push('route preHandler') },
      onUpgrade (request) {
        order.push('onUpgrade')
        return { tenant: (request as unknown as { tenant: string }).tenant }
      },
      onOpen (client) { order.push(`open ${client.params.tenant}`) }
    })
  }, { prefix: '/child' })
  const url = await listen(app)
  await assert.rejects(connect(`${url}/ws`), { statusCode: 404 })
  await connect(`${url}/child/ws`)
  await waitFor(() => order.length === 4)
  assert.deepEqual(order, ['plugin onRequest', 'route preHandler', 'onUpgrade', 'open acme'])
})

test('client.hub is the app hub, also for routes of child plugins', async (t) => {
  const app = await createApp(t)
  let client: Client | undefined
  await app.register(async function child (instance) {
    assert.notEqual(instance.hub, app.hub)
    assert.equal(instance.hub, instance.hub)
    instance.hub.route({ url: '/ws', onOpen (c) { client = c as Client } })
  })
  const url = await listen(app)
  await connect(`${url}/ws`)
  await waitFor(() => client !== undefined)
  assert.equal(client?.hub, app.hub)
  assert.equal(app.hub.clients.get(client?.id ?? ''), client)
})

test('a plain HTTP GET on a hub route answers 404 and runs no onUpgrade', async (t) => {
  const app = await createApp(t)
  let upgrades = 0
  app.hub.route({ url: '/ws', onUpgrade () { upgrades++; return {} } })
  const response = await app.inject({ method: 'GET', url: '/ws' })
  assert.equal(response.statusCode, 404)
  assert.equal(upgrades, 0)
})

test('bad route options throw FST_WS_HUB_INVALID_ROUTE naming the option', async (t) => {
  const app = await createApp(t)
  const attempts: Array<[string, () => unknown]> = [
    ['options', () => app.hub.route(null as never)],
    ['url', () => app.hub.route({ url: 5 } as never)],
    ['onMessage', () => app.hub.route({ url: '/a', onMessage: 'x' } as never)],
    ['params', () => app.hub.route({ url: '/b', params: 'x' } as never)]
  ]
  for (const [name, attempt] of attempts) {
    assert.throws(attempt, (error: Error & { code?: string }) => {
      assert.equal(error.code, 'FST_WS_HUB_INVALID_ROUTE')
      assert.ok(error.message.includes(`"${name}"`), error.message)
      return true
    })
  }
})

test('works with @fastify/websocket registered before it, and with injectWS', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(fastifyWebsocket)
  await app.register(fastifyWsHub, { heartbeat: false, handshakeMessage: 'hello' })
  app.hub.route({ url: '/ws', onMessage (client, data) { client.send(`echo ${String(data)}`) } })
  await app.ready()
  const messages: string[] = []
  // onInit: listen before the upgrade completes, or the handshake message may pass unheard
  const socket = await app.injectWS('/ws', {}, {
    onInit (ws) { ws.on('message', (data: Buffer) => messages.push(data.toString())) }
  })
  socket.send('ping')
  await waitFor(() => messages.length === 2)
  assert.deepEqual(messages, ['hello', 'echo ping'])
  socket.terminate()
})

function invalidRoute (name: string, reason: RegExp) {
  return namedError('FST_WS_HUB_INVALID_ROUTE', name, reason)
}

test('an unknown route option throws FST_WS_HUB_INVALID_ROUTE naming it and the closest known one', async (t) => {
  const app = await createApp(t)
  const onMesage = () => {}
  assert.throws(() => app.hub.route({ url: '/a', onMesage } as never), invalidRoute('onMesage', /did you mean "onMessage"/))
  assert.throws(() => app.hub.route({ url: '/b', prehandler: [] } as never), invalidRoute('prehandler', /did you mean "preHandler"/))
  // A hub route is a GET upgrade: a method would be ignored, so it is refused too.
  assert.throws(() => app.hub.route({ url: '/c', method: 'POST' } as never), invalidRoute('method', /unknown option/))
})

test('every Fastify route shorthand option is accepted on a hub route', async (t) => {
  const app = await createApp(t, { handshakeMessage: 'hi' })
  const hook = async () => {}
  app.hub.route({
    url: '/ws',
    schema: { querystring: Type.Object({ room: Type.Optional(Type.String()) }) },
    attachValidation: false,
    exposeHeadRoute: false,
    bodyLimit: 1024,
    handlerTimeout: 10_000,
    logLevel: 'warn',
    logSerializers: {},
    config: { any: 'thing' },
    constraints: {},
    prefixTrailingSlash: 'both',
    errorHandler (error, _request, reply) { reply.send(error) },
    childLoggerFactory (logger, bindings, options) { return logger.child(bindings, options) },
    schemaErrorFormatter: (errors) => new Error(`bad: ${errors.length}`),
    onRequest: hook,
    preParsing: hook,
    preValidation: hook,
    preHandler: hook,
    preSerialization: hook,
    onSend: hook,
    onResponse: hook,
    onTimeout: hook,
    onRequestAbort: hook
  })
  const url = await listen(app)
  const client = await connect(`${url}/ws?room=a`)
  assert.deepEqual(await client.received(1), ['hi'])
})

test('a params schema without onUpgrade throws FST_WS_HUB_INVALID_ROUTE naming params: client.params would be {}', async (t) => {
  const app = await createApp(t)
  assert.throws(
    () => app.hub.route({ url: '/ws', params: Type.Object({ userId: Type.String() }) }),
    invalidRoute('params', /needs onUpgrade/)
  )
})

test('a params schema that is not TypeBox throws FST_WS_HUB_INVALID_ROUTE naming params', async (t) => {
  const app = await createApp(t)
  const jsonSchema = { type: 'object', properties: { userId: { type: 'string' } } }
  for (const params of [jsonSchema, Type.Object({ userId: { type: 'string' } } as never)]) {
    assert.throws(
      () => app.hub.route({ url: '/ws', params, onUpgrade: () => ({ userId: 'u' }) } as never),
      invalidRoute('params', /expected a TypeBox schema/)
    )
  }
})
