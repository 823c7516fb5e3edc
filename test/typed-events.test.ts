import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Type, type Client } from '../dist/index.js'
import { connect, createApp, listen, waitFor } from './helpers.js'
import { connectTyped, schemas } from './typed-env.js'

test('client.sendEvent writes {"type","data"} with only the schema properties, and returns false once closed', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  let opened: Client | undefined
  app.hub.route({
    url: '/chat',
    events: { said: schemas.said, count: Type.Integer() },
    onOpen (client) {
      opened = client as unknown as Client
      assert.equal(client.sendEvent('said', { from: 'server', text: 'hi "you"' }), true)
      client.sendEvent('said', Object.assign({ from: 'server', text: 'b' }, { secret: 'dropped' }))
      client.sendEvent('count', 3)
    }
  })
  const client = await connectTyped(`${await listen(app)}/chat`)
  assert.deepEqual(await client.received(3), [
    '{"type":"said","data":{"from":"server","text":"hi \\"you\\""}}',
    '{"type":"said","data":{"from":"server","text":"b"}}',
    '{"type":"count","data":3}'
  ])
  client.socket.close()
  await waitFor(() => opened?.state === 'closed')
  assert.equal((opened as unknown as Client<object, never, { count: number }>).sendEvent('count', 1), false)
})

test('hub.broadcastEvent reaches every client, members of rooms, all but one, and clients of untyped routes', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  const byName = new Map<string, Client>()
  app.hub.route({
    url: '/typed',
    events: { said: schemas.said },
    onOpen (client) {
      const { name, room } = client.request.query as { name: string, room?: string }
      if (room !== undefined) client.join(room)
      byName.set(name, client as unknown as Client)
    }
  })
  app.hub.route({ url: '/plain', onOpen (client) { byName.set('plain', client as unknown as Client) } })
  const url = await listen(app)
  const a = await connectTyped(`${url}/typed?name=a&room=red`)
  const b = await connectTyped(`${url}/typed?name=b&room=blue`)
  const plain = await connect(`${url}/plain`)
  await waitFor(() => byName.size === 3)
  const hub = app.hub as unknown as { broadcastEvent (type: string, data: unknown, options?: object): number }
  assert.equal(hub.broadcastEvent('said', { from: 's', text: 'all' }), 3)
  assert.equal(hub.broadcastEvent('said', { from: 's', text: 'red' }, { room: 'red' }), 1)
  assert.equal(hub.broadcastEvent('said', { from: 's', text: 'both rooms' }, { room: ['red', 'blue'] }), 2)
  assert.equal(hub.broadcastEvent('said', { from: 's', text: 'not b' }, { except: byName.get('b') }), 2)
  assert.equal(hub.broadcastEvent('said', { from: 's', text: 'not a' }, { except: byName.get('a')?.id }), 2)
  const text = (frames: unknown[]): string[] => frames.map(frame => (frame as { data: { text: string } }).data.text)
  assert.deepEqual(text(await a.frames(4)), ['all', 'red', 'both rooms', 'not b'])
  assert.deepEqual(text(await b.frames(3)), ['all', 'both rooms', 'not a'])
  assert.deepEqual((await plain.received(3)).map(frame => (JSON.parse(frame) as { data: { text: string } }).data.text), ['all', 'not b', 'not a'])
})

test('client.hub.broadcastEvent inside a handler reaches the room', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  app.hub.route({
    url: '/chat',
    params: Type.Object({ name: Type.String() }),
    onUpgrade: (request) => ({ name: (request.query as { name: string }).name }),
    messages: { say: schemas.say, join: schemas.join },
    events: { said: schemas.said },
    handlers: {
      say (client, data) { client.hub.broadcastEvent('said', { from: client.params.name, text: data.text }, { room: 'lobby' }) },
      join (client, data) { client.join(data.room) }
    }
  })
  const url = await listen(app)
  const ann = await connectTyped(`${url}/chat?name=ann`)
  const bob = await connectTyped(`${url}/chat?name=bob`)
  const eve = await connectTyped(`${url}/chat?name=eve`)
  ann.sendJson({ type: 'join', id: 1, data: { room: 'lobby' } })
  bob.sendJson({ type: 'join', id: 1, data: { room: 'lobby' } })
  await ann.received(1)
  await bob.received(1)
  ann.sendJson({ type: 'say', data: { text: 'hello lobby' } })
  const expected = { type: 'said', data: { from: 'ann', text: 'hello lobby' } }
  assert.deepEqual((await ann.frames(2))[1], expected)
  assert.deepEqual((await bob.frames(2))[1], expected)
  eve.sendJson({ type: 'join', id: 'sync', data: { room: 'elsewhere' } })
  assert.deepEqual(await eve.frames(1), [{ type: 'join', id: 'sync', data: null }], 'eve got no event')
})

test('an event type no typed route declares throws FST_WS_HUB_UNKNOWN_EVENT, naming the declared ones', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  const hub = app.hub as unknown as { broadcastEvent (type: string, data: unknown): number }
  assert.throws(() => hub.broadcastEvent('said', {}), { code: 'FST_WS_HUB_UNKNOWN_EVENT', message: /"said" \(declared: none\)/ })
  let thrown: unknown
  app.hub.route({
    url: '/chat',
    events: { said: schemas.said, left: Type.String() },
    onOpen (client) {
      try {
        (client as unknown as { sendEvent (type: string, data: unknown): boolean }).sendEvent('sayd', {})
      } catch (error) {
        thrown = error
      }
    }
  })
  await connectTyped(`${await listen(app)}/chat`)
  await waitFor(() => thrown !== undefined)
  assert.equal((thrown as { code: string }).code, 'FST_WS_HUB_UNKNOWN_EVENT')
  assert.match((thrown as Error).message, /"sayd" \(declared: "said", "left"\)/)
})

test('without validateEvents a wrong payload is coerced by the serialiser, and a missing required property throws', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  app.hub.route({ url: '/chat', events: { said: schemas.said } })
  const client = await connectTyped(`${await listen(app)}/chat`)
  const hub = app.hub as unknown as { broadcastEvent (type: string, data: unknown): number }
  assert.equal(hub.broadcastEvent('said', { from: 1, text: 'x' }), 1)
  assert.throws(() => hub.broadcastEvent('said', { from: 'a' }), { code: 'FST_WS_HUB_INVALID_EVENT', message: /"said".*"text" is required/ })
  assert.deepEqual(await client.received(1), ['{"type":"said","data":{"from":"1","text":"x"}}'])
})

test('with validateEvents a payload that fails its schema throws FST_WS_HUB_INVALID_EVENT naming the field, and nothing is sent', async (t) => {
  const app = await createApp(t, { handshakeMessage: false, validateEvents: true })
  app.hub.route({
    url: '/chat',
    messages: { who: Type.Null() },
    events: { said: schemas.said },
    replies: { who: Type.Object({ name: Type.String() }) },
    handlers: { who: () => ({ name: 42 }) as unknown as { name: string } }
  })
  const client = await connectTyped(`${await listen(app)}/chat`)
  const hub = app.hub as unknown as { broadcastEvent (type: string, data: unknown): number }
  assert.throws(() => hub.broadcastEvent('said', { from: 1, text: 'x' }), { code: 'FST_WS_HUB_INVALID_EVENT', message: 'The data of "said" does not match its schema: data/from: Expected string' })
  assert.equal(hub.broadcastEvent('said', { from: 'a', text: 'valid' }), 1)
  client.sendJson({ type: 'who', id: 1, data: null })
  assert.deepEqual(await client.frames(2), [
    { type: 'said', data: { from: 'a', text: 'valid' } },
    { type: 'error', id: 1, error: { code: 'handler_error', message: 'the handler of this message failed' } }
  ])
})

test('two routes may declare one event with the same schema; a different schema fails registration naming the event', async (t) => {
  const app = await createApp(t)
  app.hub.route({ url: '/a', events: { said: schemas.said } })
  app.hub.route({ url: '/b', events: { said: schemas.said } })
  app.hub.route({ url: '/c', events: { said: Type.Object({ from: Type.String(), text: Type.String() }) } })
  assert.throws(() => app.hub.route({ url: '/d', events: { said: Type.Object({ from: Type.String() }) } }), {
    code: 'FST_WS_HUB_INVALID_ROUTE',
    message: /"events\.said": another typed route of this hub declares the event "said" with a different schema/
  })
  await app.ready()
  assert.deepEqual(app.hub.typedRoutes.map(route => route.url), ['/a', '/b', '/c'], 'the refused route is not registered')
})

test('the hub keeps every typed route with its full path and schemas', async (t) => {
  const app = await createApp(t)
  await app.register(async function child (instance) {
    instance.hub.route({
      url: '/chat',
      messages: { join: schemas.join },
      events: { said: schemas.said },
      replies: { join: schemas.joined },
      handlers: { join: () => ({ joined: 'x' }) }
    })
  }, { prefix: '/v1' })
  app.hub.route({ url: '/plain' })
  await app.ready()
  assert.equal(app.hub.typedRoutes.length, 1)
  const [route] = app.hub.typedRoutes
  assert.equal(route?.url, '/v1/chat')
  assert.equal(route?.messages.join, schemas.join)
  assert.equal(route?.events.said, schemas.said)
  assert.equal(route?.replies.join, schemas.joined)
})

test('a route with events only keeps its text frames untyped: onMessage gets them', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  const got: string[] = []
  app.hub.route({
    url: '/feed',
    events: { tick: Type.Integer() },
    onMessage (client, data) {
      got.push(String(data))
      client.sendEvent('tick', got.length)
    }
  })
  const client = await connectTyped(`${await listen(app)}/feed`)
  client.socket.send('{"type":"anything"}')
  assert.deepEqual(await client.received(1), ['{"type":"tick","data":1}'])
  assert.deepEqual(got, ['{"type":"anything"}'])
})
