import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import specs from '@asyncapi/specs'
import { Ajv } from 'ajv'
import formats from 'ajv-formats'
import type { FastifyInstance } from 'fastify'
import { Type, type AsyncApiDocument, type AsyncApiMessage } from '../dist/index.js'
import { createApp, listen } from './helpers.js'
import { connectTyped, schemas } from './typed-env.js'

/**
 * The official AsyncAPI 3.0.0 JSON Schema, compiled. It is draft-07 and embeds the draft-07
 * meta-schema itself (to check message payloads), so Ajv must not add its own copy (`meta: false`)
 * nor check the schema against it; `strict: false` because it uses keywords Ajv does not know.
 */
function asyncApiValidator (): (document: unknown) => string[] {
  const ajv = new Ajv({ strict: false, allErrors: true, meta: false, validateSchema: false })
  formats.default(ajv)
  const validate = ajv.compile(specs.schemas['3.0.0'])
  return (document) => validate(document) ? [] : (validate.errors ?? []).map(error => `${error.instancePath} ${error.message ?? ''}`)
}

/** A validator of one message's payload, to check real frames against the document. */
function payloadValidator (message: AsyncApiMessage): (frame: unknown) => boolean {
  const ajv = new Ajv({ strict: false })
  return ajv.compile(message.payload)
}

/** Two typed routes, one under a plugin prefix with a path parameter, and a route with events only. */
async function chatApp (t: TestContext): Promise<FastifyInstance> {
  const app = await createApp(t, { handshakeMessage: false })
  app.hub.route({
    url: '/chat',
    messages: { say: schemas.say, join: schemas.join },
    events: { said: schemas.said },
    replies: { join: schemas.joined },
    handlers: {
      say (client, data) { client.sendEvent('said', { from: 'me', text: data.text }) },
      join (_client, data) { return { joined: data.room } }
    }
  })
  await app.register(async (scoped) => {
    scoped.hub.route({
      url: '/rooms/:room',
      messages: { 'room/leave': Type.Undefined(), ping: Type.Unknown() },
      events: { said: schemas.said },
      handlers: { 'room/leave' () {}, ping () { return 'pong' } }
    })
    scoped.hub.route({ url: '/feed', events: { said: schemas.said } })
  }, { prefix: '/v1' })
  await app.ready()
  return app
}

function message (document: AsyncApiDocument, channel: string, key: string): AsyncApiMessage {
  const found = document.channels[channel]?.messages[key]
  assert.ok(found !== undefined && 'payload' in found, `${channel} has message ${key}`)
  return found
}

test('hub.asyncapi() is a valid AsyncAPI 3.0.0 document of every typed route', async (t) => {
  const app = await chatApp(t)
  const validate = asyncApiValidator()
  const document = app.hub.asyncapi()
  assert.deepEqual(validate(document), [])

  // The validator is not vacuous: documents broken in a few ways are refused.
  const { asyncapi: _version, ...withoutVersion } = document
  assert.notDeepEqual(validate(withoutVersion), [])
  assert.notDeepEqual(validate({ ...document, asyncapi: '2.6.0' }), [])
  const badAction = structuredClone(document)
  Object.assign(badAction.operations['chat.send.said'] ?? {}, { action: 'publish' })
  assert.notDeepEqual(validate(badAction), [])
  const badPayload = structuredClone(document)
  Object.assign(message(badPayload, 'chat', 'event.said').payload, { type: 'not-a-type' })
  assert.notDeepEqual(validate(badPayload), [])

  assert.equal(document.asyncapi, '3.0.0')
  assert.deepEqual(document.info, { title: 'fastify-ws-hub', version: '1.0.0' })
  assert.equal(document.defaultContentType, 'application/json')
  assert.deepEqual(JSON.parse(JSON.stringify(document)), document, 'plain JSON data')

  // one channel per typed route, at its full path
  assert.deepEqual(Object.fromEntries(Object.entries(document.channels).map(([id, channel]) => [id, channel.address])), {
    chat: '/chat',
    v1_rooms_room: '/v1/rooms/{room}',
    v1_feed: '/v1/feed'
  })
  assert.deepEqual(document.channels.v1_rooms_room?.parameters, { room: { description: 'the route\'s path parameter :room' } })

  // receive per message type, send per event type and for errors; replies on the receive operations
  assert.deepEqual(Object.fromEntries(Object.entries(document.operations).map(([id, operation]) => [id, [operation.action, operation.channel.$ref]])), {
    'chat.receive.say': ['receive', '#/channels/chat'],
    'chat.receive.join': ['receive', '#/channels/chat'],
    'chat.send.said': ['send', '#/channels/chat'],
    'chat.send.error': ['send', '#/channels/chat'],
    'v1_rooms_room.receive.room_leave': ['receive', '#/channels/v1_rooms_room'],
    'v1_rooms_room.receive.ping': ['receive', '#/channels/v1_rooms_room'],
    'v1_rooms_room.send.said': ['send', '#/channels/v1_rooms_room'],
    'v1_rooms_room.send.error': ['send', '#/channels/v1_rooms_room'],
    'v1_feed.send.said': ['send', '#/channels/v1_feed']
  })
  assert.deepEqual(document.operations['chat.receive.join']?.messages, [{ $ref: '#/channels/chat/messages/message.join' }])
  assert.deepEqual(document.operations['chat.receive.join']?.reply, {
    channel: { $ref: '#/channels/chat' },
    messages: [{ $ref: '#/channels/chat/messages/reply.join' }, { $ref: '#/channels/chat/messages/error' }]
  })
  assert.deepEqual(Object.keys(document.channels.chat?.messages ?? {}), ['error', 'message.say', 'reply.say', 'message.join', 'reply.join', 'event.said'])
  assert.deepEqual(Object.keys(document.channels.v1_feed?.messages ?? {}), ['event.said'], 'no error frames on a route with events only')

  // payloads: the wire envelopes around the TypeBox schemas' JSON
  const say = message(document, 'chat', 'message.say')
  assert.equal(say.name, 'say')
  assert.deepEqual(say.payload, {
    type: 'object',
    properties: { type: { const: 'say' }, data: JSON.parse(JSON.stringify(schemas.say)), id: { type: ['string', 'number'], description: 'the client\'s message id, echoed' } },
    required: ['type', 'data'],
    additionalProperties: false
  })
  assert.deepEqual(message(document, 'chat', 'reply.join').payload.properties, {
    type: { const: 'join' },
    id: { type: ['string', 'number'], description: 'the client\'s message id, echoed' },
    data: JSON.parse(JSON.stringify(schemas.joined))
  })
  assert.deepEqual((message(document, 'chat', 'reply.say').payload.properties as Record<string, unknown>).data, {}, 'an undeclared reply is any JSON')
  assert.deepEqual((message(document, 'chat', 'event.said').payload.properties as Record<string, unknown>).data, JSON.parse(JSON.stringify(schemas.said)))
  const leave = message(document, 'v1_rooms_room', 'message.room_leave')
  assert.equal(leave.name, 'room/leave')
  assert.deepEqual(leave.payload.required, ['type'], 'no data for a Type.Undefined() message')
  assert.deepEqual(message(document, 'v1_rooms_room', 'message.ping').payload.required, ['type'], 'data optional where the schema accepts none')
  const error = document.components.messages.error
  const code = ((error.payload.properties as { error: { properties: { code: { anyOf: Array<{ enum?: string[] }> } } } }).error.properties.code)
  assert.deepEqual(code.anyOf[0]?.enum, ['invalid_json', 'invalid_message', 'unknown_type', 'invalid_data', 'binary_not_accepted', 'handler_error'])
})

test('the frames a typed route sends and accepts fit the document\'s payloads', async (t) => {
  const app = await chatApp(t)
  const document = app.hub.asyncapi()
  const client = await connectTyped(`${await listen(app)}/chat`)
  const sent = [{ type: 'join', id: 1, data: { room: 'lobby' } }, { type: 'say', id: 'a', data: { text: 'hi' } }, { type: 'shout', id: 2, data: {} }]
  assert.ok(payloadValidator(message(document, 'chat', 'message.join'))(sent[0]))
  assert.ok(payloadValidator(message(document, 'chat', 'message.say'))(sent[1]))
  assert.ok(!payloadValidator(message(document, 'chat', 'message.say'))({ type: 'say', data: { text: 'hi' }, extra: 1 }))
  for (const frame of sent) client.sendJson(frame)
  const [joined, said, saidReply, unknown] = await client.frames(4)
  assert.ok(payloadValidator(message(document, 'chat', 'reply.join'))(joined), JSON.stringify(joined))
  assert.ok(payloadValidator(message(document, 'chat', 'event.said'))(said), JSON.stringify(said))
  assert.ok(payloadValidator(message(document, 'chat', 'reply.say'))(saidReply), JSON.stringify(saidReply))
  assert.ok(payloadValidator(document.components.messages.error)(unknown), JSON.stringify(unknown))
  assert.ok(payloadValidator(document.components.messages.error)({ type: 'error', error: { code: 'room_full', message: 'room is full' } }), 'an exposed error\'s own code')
  client.socket.close()
})

test('hub.asyncapi(info, { servers }) takes the info and servers, and returns a new document each time', async (t) => {
  const app = await chatApp(t)
  const servers = { production: { host: 'chat.example.com', protocol: 'wss', description: 'the public hub' } }
  const document = app.hub.asyncapi({ title: 'Chat', description: 'The chat protocol' }, { servers })
  assert.deepEqual(asyncApiValidator()(document), [])
  assert.deepEqual(document.info, { title: 'Chat', version: '1.0.0', description: 'The chat protocol' })
  assert.deepEqual(document.servers, servers)
  assert.notEqual(document.servers?.production, servers.production, 'copied')
  assert.equal(app.hub.asyncapi({ version: '2.1.0' }).info.version, '2.1.0')

  message(document, 'chat', 'message.say').payload = {}
  document.info.title = 'changed'
  const next = app.hub.asyncapi()
  assert.notDeepEqual(message(next, 'chat', 'message.say').payload, {})
  assert.equal(next.info.title, 'fastify-ws-hub')
  assert.equal(app.hub.asyncapi().servers, undefined)
})

test('a hub without typed routes has an empty document; ids stay unique; Fastify\'s escaped colon is a plain one', async (t) => {
  const app = await createApp(t)
  app.hub.route({ url: '/plain', onMessage () {} })
  app.hub.route({ url: '/a/b', events: { x: Type.Null() } })
  app.hub.route({ url: '/a_b', events: { x: Type.Null() } })
  app.hub.route({ url: '/', events: { x: Type.Null() } })
  app.hub.route({ url: '/time::now', events: { x: Type.Null() } })
  app.get('/asyncapi.json', async () => app.hub.asyncapi())
  await app.ready()
  const document = app.hub.asyncapi()
  assert.deepEqual((await app.inject('/asyncapi.json')).json(), document, 'served as the README shows')
  assert.deepEqual(asyncApiValidator()(document), [])
  assert.deepEqual(Object.fromEntries(Object.entries(document.channels).map(([id, channel]) => [id, channel.address])), { a_b: '/a/b', a_b_2: '/a_b', root: '/', timenow: '/time:now' })

  const empty = await createApp(t)
  await empty.ready()
  const none = empty.hub.asyncapi()
  assert.deepEqual(asyncApiValidator()(none), [])
  assert.deepEqual([none.channels, none.operations], [{}, {}])
})
