import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import fastifyWsHub, { Type, defineRoute } from '../dist/index.js'
import { createApp, listen } from './helpers.js'
import { connectTyped, schemas } from './typed-env.js'

/** Registers route options that the static types would refuse, to test the run-time checks. */
function registerUnchecked (app: Awaited<ReturnType<typeof createApp>>, options: Record<string, unknown>): void {
  (app.hub.route as unknown as (options: Record<string, unknown>) => unknown)({ url: '/typed', ...options })
}

const say = { say: schemas.say }
const handleSay = { say () {} }

test('typed route options are checked at registration with FST_WS_HUB_INVALID_ROUTE naming the option', async (t) => {
  const app = await createApp(t)
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ messages: say, handlers: { ...handleSay, shout () {} } }, /"handlers\.shout": "shout" is not a declared message type/],
    [{ messages: { ...say, join: schemas.join }, handlers: handleSay }, /"messages\.join": has no handler: add handlers\.join/],
    [{ messages: say, handlers: { say: 'nope' } }, /"handlers\.say": expected a function/],
    [{ handlers: handleSay }, /"handlers": needs messages/],
    [{ replies: { say: schemas.joined } }, /"replies": needs messages/],
    [{ messages: say, handlers: handleSay, replies: { shout: schemas.joined } }, /"replies\.shout": "shout" is not a declared message type/],
    [{ messages: [schemas.say] }, /"messages": expected an object of TypeBox schemas by type/],
    [{ events: 'said' }, /"events": expected an object/],
    [{ messages: { say: { type: 'object' } }, handlers: handleSay }, /"messages\.say": expected a TypeBox schema .* plain JSON Schema is not supported/],
    [{ messages: { say: null }, handlers: handleSay }, /"messages\.say": expected a TypeBox schema/],
    [{ messages: { error: schemas.say }, handlers: { error () {} } }, /"messages\.error": "error" is the type of error frames/],
    [{ events: { error: schemas.said } }, /"events\.error": "error" is the type of error frames/],
    [{ events: { status: schemas.said } }, /"events\.status": "status" is a lifecycle name of the client's on\(\)/],
    [{ events: { message: schemas.said } }, /"events\.message": "message" is a lifecycle name of the client's on\(\)/],
    [{ events: { when: Type.Date() } }, /"events\.when": fast-json-stringify cannot compile this schema/],
    [{ mesages: say }, /"mesages": unknown option; did you mean "messages"\?/]
  ]
  for (const [options, message] of cases) {
    assert.throws(() => registerUnchecked(app, options), { code: 'FST_WS_HUB_INVALID_ROUTE', message }, JSON.stringify(Object.keys(options)))
  }
})

test('maxInvalidMessages and validateEvents are checked hub options', async () => {
  for (const [options, message] of [
    [{ maxInvalidMessages: 0 }, /"maxInvalidMessages": expected a whole number >= 1, got 0/],
    [{ maxInvalidMessages: 2.5 }, /"maxInvalidMessages"/],
    [{ validateEvents: 'yes' }, /"validateEvents": expected true or false, got "yes"/],
    [{ validateEvent: true }, /"validateEvent": unknown option; did you mean "validateEvents"\?/]
  ] as const) {
    const app = Fastify()
    await assert.rejects(async () => { await app.register(fastifyWsHub, options as object) }, { code: 'FST_WS_HUB_INVALID_OPTION', message })
    await app.close()
  }
})

test('defineRoute returns its options unchanged, ready for app.hub.route', async (t) => {
  const chatRoute = defineRoute({
    url: '/chat',
    messages: { join: schemas.join },
    replies: { join: schemas.joined },
    handlers: { join: (client, data) => { client.join(data.room); return { joined: data.room } } }
  })
  const app = await createApp(t, { handshakeMessage: false })
  app.hub.route(chatRoute)
  const client = await connectTyped(`${await listen(app)}/chat`)
  client.sendJson({ type: 'join', id: 1, data: { room: 'lobby' } })
  assert.deepEqual(await client.frames(1), [{ type: 'join', id: 1, data: { joined: 'lobby' } }])
  assert.equal(defineRoute(chatRoute), chatRoute)
})
