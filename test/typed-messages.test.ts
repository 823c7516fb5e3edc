import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { Type, type Client, type FastifyWsHubOptions } from '../dist/index.js'
import { createApp, listen, waitFor } from './helpers.js'
import { connectTyped, schemas, type TypedTestClient } from './typed-env.js'

interface Chat {
  app: FastifyInstance
  client: TypedTestClient
  seen: Array<{ type: string, data: unknown }>
  errors: Error[]
}

/** A hub with the typed chat route at /chat and one client connected to it. */
async function chat (t: TestContext, options: FastifyWsHubOptions = {}, extra: Record<string, unknown> = {}): Promise<Chat> {
  const app = await createApp(t, { handshakeMessage: false, ...options })
  const seen: Chat['seen'] = []
  const errors: Error[] = []
  app.hub.route({
    url: '/chat',
    messages: { say: schemas.say, join: schemas.join, echo: Type.Unknown(), fail: Type.Object({ how: Type.String() }) },
    replies: { join: schemas.joined },
    handlers: {
      say (_client, data) {
        seen.push({ type: 'say', data })
        return { ignored: 'without an id' }
      },
      async join (client, data) {
        seen.push({ type: 'join', data })
        client.join(data.room)
        return { joined: data.room }
      },
      echo (_client, data) {
        seen.push({ type: 'echo', data })
        return data
      },
      async fail (_client, data) {
        if (data.how === 'throw') throw new Error('secret internal detail')
        if (data.how === 'expose') throw Object.assign(new Error('room is full'), { expose: true })
        if (data.how === 'code') throw Object.assign(new Error('room is full'), { expose: true, code: 'room_full' })
        if (data.how === 'string') throw 'a string' // eslint-disable-line no-throw-literal
        if (data.how === 'function') return () => {}
        return undefined
      }
    },
    onError (_client, error) { errors.push(error) },
    ...extra
  })
  const url = await listen(app)
  return { app, client: await connectTyped(`${url}/chat`), seen, errors }
}

test('a message is checked and handed to the handler of its type, with its data', async (t) => {
  const { client, seen } = await chat(t)
  client.sendJson({ type: 'say', data: { text: 'hello' } })
  client.sendJson({ type: 'join', data: { room: 'lobby' } })
  await waitFor(() => seen.length === 2)
  assert.deepEqual(seen, [{ type: 'say', data: { text: 'hello' } }, { type: 'join', data: { room: 'lobby' } }])
  assert.deepEqual(client.messages, [], 'without an id no reply is sent')
})

test('a message with an id gets a reply {type, id, data} with the handler result, for string and number ids', async (t) => {
  const { client } = await chat(t)
  client.sendJson({ type: 'join', id: 'r1', data: { room: 'lobby' } })
  client.sendJson({ type: 'join', id: 2, data: { room: 'kitchen' } })
  client.sendJson({ type: 'echo', id: 3, data: { any: ['json', 1] } })
  client.sendJson({ type: 'fail', id: 4, data: { how: 'nothing' } })
  assert.deepEqual(await client.received(4), [
    '{"type":"join","id":"r1","data":{"joined":"lobby"}}',
    '{"type":"join","id":2,"data":{"joined":"kitchen"}}',
    '{"type":"echo","id":3,"data":{"any":["json",1]}}',
    '{"type":"fail","id":4,"data":null}'
  ])
})

test('a declared reply is written by its compiled serialiser: only the schema properties', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  app.hub.route({
    url: '/r',
    messages: { who: Type.Null() },
    replies: { who: Type.Object({ name: Type.String() }) },
    handlers: { who: () => Object.assign({ name: 'ann' }, { password: 'hidden' }) }
  })
  const client = await connectTyped(`${await listen(app)}/r`)
  client.sendJson({ type: 'who', id: 1, data: null })
  assert.deepEqual(await client.received(1), ['{"type":"who","id":1,"data":{"name":"ann"}}'])
})

test('each kind of invalid frame gets its error code, with the id when the message carried one', async (t) => {
  const { client, seen, app } = await chat(t, { maxInvalidMessages: 20 })
  client.sendJson('not json')
  client.sendJson('[1,2]')
  client.sendJson('"a string"')
  client.sendJson({ data: {} })
  client.sendJson({ type: 'say', id: { no: 1 }, data: { text: 'x' } })
  client.sendJson('{"type":"say","id":1e400,"data":{"text":"x"}}')
  client.sendJson({ type: 'say', id: 'k', data: { text: 'x' }, extra: true })
  client.sendJson({ type: 'shout', id: 'u', data: {} })
  client.sendJson({ type: 'say', id: 9, data: { text: '' } })
  client.sendJson({ type: 'join', data: { room: 'Bad Room' } })
  client.sendJson({ type: 'say', data: {} })
  const frames = await client.frames(11) as Array<{ type: string, id?: unknown, error: { code: string, message: string } }>
  assert.ok(frames.every(frame => frame.type === 'error'))
  assert.deepEqual(frames.map(frame => [frame.error.code, frame.id]), [
    ['invalid_json', undefined],
    ['invalid_message', undefined],
    ['invalid_message', undefined],
    ['invalid_message', undefined],
    ['invalid_message', undefined],
    ['invalid_message', undefined],
    ['invalid_message', 'k'],
    ['unknown_type', 'u'],
    ['invalid_data', 9],
    ['invalid_data', undefined],
    ['invalid_data', undefined]
  ])
  assert.match(frames[6]!.error.message, /"extra"/)
  assert.match(frames[7]!.error.message, /"shout"/)
  assert.equal(frames[8]!.error.message, 'data/text: Expected string length greater or equal to 1')
  assert.match(frames[9]!.error.message, /^data\/room: Expected string to match/)
  assert.match(frames[10]!.error.message, /^data\/text: Expected required property/)
  assert.deepEqual(seen, [], 'no handler ran')
  assert.equal(app.hub.stats().invalidMessages, 11)
  assert.equal(client.socket.readyState, client.socket.OPEN)
})

test('an error frame echoes at most 64 characters of what the client sent', async (t) => {
  const { client } = await chat(t)
  client.sendJson({ type: 'x'.repeat(1000), data: {} })
  const [frame] = await client.frames(1) as Array<{ error: { message: string } }>
  assert.ok(frame!.error.message.length < 120)
})

test('after maxInvalidMessages invalid frames the client is closed with 1008, the last one answered first', async (t) => {
  const { client, app } = await chat(t, { maxInvalidMessages: 3 })
  client.sendJson({ type: 'say', data: { text: 'valid' } })
  client.sendJson('bad 1')
  client.sendJson({ type: 'nope' })
  assert.equal((await client.frames(2)).length, 2)
  assert.equal(client.socket.readyState, client.socket.OPEN, 'two invalid frames are below the limit')
  client.sendJson({ type: 'say', data: { text: '' } })
  client.sendJson({ type: 'say', data: { text: 'not handled: the client is closing' } })
  const closed = await client.closed
  assert.deepEqual(closed, { code: 1008, reason: 'too many invalid messages' })
  const frames = await client.frames(3) as Array<{ error: { code: string } }>
  assert.equal(frames[2]!.error.code, 'invalid_data')
  assert.equal(client.messages.length, 3)
  const stats = app.hub.stats()
  assert.equal(stats.invalidMessages, 3)
  assert.equal(stats.invalidMessageCloses, 1)
})

test('the default maxInvalidMessages is 10, counted per client', async (t) => {
  const { client, app } = await chat(t)
  const other = await connectTyped(`ws://127.0.0.1:${(app.server.address() as { port: number }).port}/chat`)
  for (let i = 0; i < 9; i++) client.sendJson('bad')
  other.sendJson('bad')
  await client.received(9)
  await other.received(1)
  assert.equal(client.socket.readyState, client.socket.OPEN)
  client.sendJson('bad')
  assert.equal((await client.closed).code, 1008)
  assert.equal(other.socket.readyState, other.socket.OPEN)
  assert.equal(app.hub.stats().invalidMessages, 11)
})

test('keys named __proto__, constructor and prototype never reach a handler as prototypes', async (t) => {
  const { client, seen } = await chat(t)
  client.sendJson('{"type":"echo","id":1,"data":{"__proto__":{"polluted":true}}}')
  client.sendJson('{"type":"echo","id":2,"data":{"constructor":{"prototype":{"polluted":true}}}}')
  client.sendJson('{"type":"echo","id":3,"data":{"nested":[{"__proto__":{"polluted":true}}]}}')
  client.sendJson('{"__proto__":{"type":"echo"},"data":{}}')
  client.sendJson('{"type":"echo","id":5,"data":{"constructor":"plain","prototype":{"polluted":true}}}')
  const frames = await client.frames(5) as Array<{ type: string, id?: number, error?: { code: string } }>
  assert.deepEqual(frames.slice(0, 4).map(frame => frame.error?.code), ['invalid_json', 'invalid_json', 'invalid_json', 'invalid_json'])
  assert.deepEqual(frames.slice(0, 3).map(frame => frame.id), [undefined, undefined, undefined])
  assert.equal(frames[4]!.type, 'echo')
  assert.equal(seen.length, 1)
  const data = seen[0]!.data as Record<string, unknown>
  assert.equal(Object.getPrototypeOf(data), Object.prototype)
  assert.equal(data.constructor, 'plain', 'a constructor key that holds no prototype is plain data')
  assert.ok(Object.hasOwn(data, 'prototype'))
  assert.equal(({} as Record<string, unknown>).polluted, undefined)
})

test('a handler that throws answers handler_error with a generic message, calls onError, and the client stays open', async (t) => {
  const { client, errors, app } = await chat(t)
  client.sendJson({ type: 'fail', id: 'a', data: { how: 'throw' } })
  client.sendJson({ type: 'fail', data: { how: 'throw' } })
  client.sendJson({ type: 'fail', id: 'c', data: { how: 'string' } })
  client.sendJson({ type: 'join', id: 'd', data: { room: 'after' } })
  const frames = await client.received(4)
  assert.deepEqual(frames.slice(0, 3).map(frame => JSON.parse(frame) as unknown), [
    { type: 'error', id: 'a', error: { code: 'handler_error', message: 'the handler of this message failed' } },
    { type: 'error', error: { code: 'handler_error', message: 'the handler of this message failed' } },
    { type: 'error', id: 'c', error: { code: 'handler_error', message: 'the handler of this message failed' } }
  ])
  assert.ok(!frames.join('').includes('secret'), 'nothing of the error reaches the client')
  assert.equal(frames[3], '{"type":"join","id":"d","data":{"joined":"after"}}')
  assert.deepEqual(errors.map(error => error.message), ['secret internal detail', 'secret internal detail', 'A hub handler threw a non-Error value: a string'])
  assert.equal(app.hub.stats().handlerErrors, 3)
  assert.equal(app.hub.stats().invalidMessages, 0, 'a failed handler is not an invalid message')
  assert.equal(client.socket.readyState, client.socket.OPEN)
})

test('an error marked expose sends its message, and its code when it has one', async (t) => {
  const { client } = await chat(t)
  client.sendJson({ type: 'fail', id: 1, data: { how: 'expose' } })
  client.sendJson({ type: 'fail', id: 2, data: { how: 'code' } })
  assert.deepEqual(await client.frames(2), [
    { type: 'error', id: 1, error: { code: 'handler_error', message: 'room is full' } },
    { type: 'error', id: 2, error: { code: 'room_full', message: 'room is full' } }
  ])
})

test('a reply that has no JSON form is a handler error', async (t) => {
  const { client, errors } = await chat(t)
  client.sendJson({ type: 'fail', id: 1, data: { how: 'function' } })
  assert.deepEqual(await client.frames(1), [{ type: 'error', id: 1, error: { code: 'handler_error', message: 'the handler of this message failed' } }])
  assert.equal(errors[0]?.message, 'Cannot send this value as a websocket message: function has no JSON form')
})

test('a binary frame on a typed route without onMessage is an invalid message', async (t) => {
  const { client, app } = await chat(t)
  client.socket.send(Buffer.from([1, 2, 3]))
  assert.deepEqual(await client.frames(1), [{ type: 'error', error: { code: 'binary_not_accepted', message: 'this route takes text frames of JSON messages, not binary frames' } }])
  assert.equal(app.hub.stats().invalidMessages, 1)
})

test('a typed route with onMessage hands it the binary frames only; a failure there keeps the client open', async (t) => {
  const binaries: string[] = []
  const { client, seen, errors } = await chat(t, {}, {
    onMessage (_client: Client, data: Buffer, isBinary: boolean) {
      assert.equal(isBinary, true)
      if (data[0] === 0xff) throw new Error('bad upload')
      binaries.push(data.toString('hex'))
    }
  })
  client.socket.send(Buffer.from([0xca, 0xfe]))
  client.sendJson({ type: 'say', data: { text: 'text goes to the handlers' } })
  client.socket.send(Buffer.from([0xff]))
  client.sendJson({ type: 'join', id: 1, data: { room: 'r' } })
  assert.deepEqual(await client.frames(2), [
    { type: 'error', error: { code: 'handler_error', message: 'the handler of this message failed' } },
    { type: 'join', id: 1, data: { joined: 'r' } }
  ])
  assert.deepEqual(binaries, ['cafe'])
  assert.equal(seen.length, 2)
  assert.equal(errors[0]?.message, 'bad upload')
})

test('async handlers run one at a time per client, in order, replying in order (200 messages)', async (t) => {
  const app = await createApp(t, { handshakeMessage: false })
  let running = 0
  let most = 0
  const order: number[] = []
  app.hub.route({
    url: '/slow',
    messages: { step: Type.Object({ n: Type.Integer() }) },
    handlers: {
      async step (_client, data) {
        running++
        most = Math.max(most, running)
        // Alternate an immediate and a later settlement, so that reordering would show.
        await new Promise(resolve => data.n % 2 === 0 ? setImmediate(resolve) : setTimeout(resolve, 1))
        order.push(data.n)
        running--
        return data.n
      }
    }
  })
  const client = await connectTyped(`${await listen(app)}/slow`)
  for (let n = 0; n < 200; n++) client.sendJson({ type: 'step', id: n, data: { n } })
  const replies = await client.frames(200) as Array<{ id: number, data: number }>
  assert.deepEqual(order, Array.from({ length: 200 }, (_, n) => n))
  assert.deepEqual(replies.map(reply => reply.id), order)
  assert.deepEqual(replies.map(reply => reply.data), order)
  assert.equal(most, 1)
})

test('a client closed by too many invalid messages does not have its queued messages handled', async (t) => {
  const app = await createApp(t, { handshakeMessage: false, maxInvalidMessages: 1 })
  const handled: number[] = []
  let release: () => void = () => {}
  app.hub.route({
    url: '/q',
    messages: { work: Type.Integer() },
    handlers: {
      async work (_client, n) {
        handled.push(n)
        if (n === 0) await new Promise<void>(resolve => { release = resolve })
      }
    }
  })
  const client = await connectTyped(`${await listen(app)}/q`)
  client.sendJson({ type: 'work', data: 0 })
  await waitFor(() => handled.length === 1)
  client.sendJson('bad')
  client.sendJson({ type: 'work', data: 1 })
  await waitFor(() => client.socket.bufferedAmount === 0)
  release()
  assert.equal((await client.closed).code, 1008)
  assert.deepEqual(handled, [0])
})
