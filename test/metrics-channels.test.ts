import assert from 'node:assert/strict'
import { AsyncLocalStorage } from 'node:async_hooks'
import { subscribe, tracingChannel, unsubscribe } from 'node:diagnostics_channel'
import { test, type TestContext } from 'node:test'
import {
  ChannelName,
  Type,
  type ConnectionCloseMessage,
  type ConnectionOpenMessage,
  type HandlerTraceContext,
  type MessageInMessage,
  type MessageOutMessage
} from '../dist/index.js'
import { connect, createApp, listen, waitFor } from './helpers.js'

/** Subscribes to a channel for the test's length and returns what it received. */
function listenTo<T> (t: TestContext, name: string): T[] {
  const received: T[] = []
  const listener = (message: unknown): void => { received.push(message as T) }
  subscribe(name, listener)
  t.after(() => unsubscribe(name, listener))
  return received
}

test('subscribers of the connection and message channels get each open, close, frame in and message out', async (t) => {
  const opens = listenTo<ConnectionOpenMessage>(t, ChannelName.connectionOpen)
  const closes = listenTo<ConnectionCloseMessage>(t, ChannelName.connectionClose)
  const ins = listenTo<MessageInMessage>(t, ChannelName.messageIn)
  const outs = listenTo<MessageOutMessage>(t, ChannelName.messageOut)
  assert.equal(ChannelName.connectionOpen, 'fastify-ws-hub:connection:open')
  const app = await createApp(t, { handshakeMessage: false })
  app.hub.route({ url: '/ws', onMessage (client, data) { client.send(`echo ${String(data)}`) } })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  await waitFor(() => opens.length === 1)
  const [serverClient] = app.hub.clients.values()
  assert.equal(opens[0]?.client, serverClient)

  client.socket.send('hi')
  await client.received(1)
  client.socket.send(Buffer.from([1, 2]))
  await client.received(2)
  assert.deepEqual(ins.map(message => [message.client.id, message.data.toString('hex'), message.isBinary]),
    [[serverClient?.id, Buffer.from('hi').toString('hex'), false], [serverClient?.id, '0102', true]])
  assert.deepEqual(outs.map(message => [message.client.id, message.data.toString(), message.isBinary]),
    [[serverClient?.id, 'echo hi', false], [serverClient?.id, 'echo \x01\x02', false]])
  app.hub.broadcast(Buffer.from([9]))
  await client.received(3)
  assert.deepEqual(outs[2]?.data, Buffer.from([9]))
  assert.equal(outs[2]?.isBinary, true)

  client.socket.close(4100, 'done')
  await waitFor(() => closes.length === 1)
  assert.equal(closes[0]?.client, serverClient)
  assert.equal(closes[0]?.code, 4100)
  assert.equal(closes[0]?.reason, 'done')
  assert.equal(app.hub.onlineCount(), 0, 'the client has left the hub when its close is published')
})

test('the handler tracing channel wraps each handler, keeps a store across its awaits, and reports results and errors', async (t) => {
  const handler = tracingChannel<unknown, HandlerTraceContext>(ChannelName.handler)
  const events: string[] = []
  const storage = new AsyncLocalStorage<string>()
  handler.start.bindStore(storage, context => `span:${context.type}`)
  const listeners = {
    start (context: HandlerTraceContext) { events.push(`start ${context.type}`) },
    end (context: HandlerTraceContext) { events.push(`end ${context.type}`) },
    asyncStart (context: HandlerTraceContext) { events.push(`asyncStart ${context.type} ${JSON.stringify(context.result)}`) },
    asyncEnd (context: HandlerTraceContext) { events.push(`asyncEnd ${context.type}`) },
    error (context: HandlerTraceContext) { events.push(`error ${context.type} ${(context.error as Error).message}`) }
  }
  handler.subscribe(listeners)
  t.after(() => {
    handler.unsubscribe(listeners)
    handler.start.unbindStore(storage)
  })
  const seenStores: Array<string | undefined> = []
  const app = await createApp(t, { handshakeMessage: false })
  app.hub.route({
    url: '/typed',
    messages: { add: Type.Object({ a: Type.Number(), b: Type.Number() }), fail: Type.Object({}) },
    handlers: {
      async add (_client, { a, b }) {
        await new Promise(resolve => setTimeout(resolve, 1))
        seenStores.push(storage.getStore())
        return a + b
      },
      fail () { throw new Error('nope') }
    }
  })
  app.hub.route({ url: '/plain', onMessage () { seenStores.push(storage.getStore()) } })
  const url = await listen(app)
  const typed = await connect(`${url}/typed`)
  typed.socket.send(JSON.stringify({ type: 'add', data: { a: 1, b: 2 }, id: 1 }))
  await typed.received(1)
  await waitFor(() => events.length === 4)
  typed.socket.send(JSON.stringify({ type: 'fail', data: {} }))
  await typed.received(2)
  const plain = await connect(`${url}/plain`)
  plain.socket.send('x')
  await waitFor(() => seenStores.length === 2)
  await waitFor(() => events.length === 9)
  assert.deepEqual(events, [
    'start add', 'end add', 'asyncStart add 3', 'asyncEnd add',
    'start fail', 'error fail nope', 'end fail',
    'start onMessage', 'end onMessage'
  ])
  // The store bound at start is the handler's across its await: a tracer's span stays current.
  assert.deepEqual(seenStores, ['span:add', 'span:onMessage'])
})

test('an async handler that rejects is reported on the error channel and stays the read loop\'s to handle', async (t) => {
  const handler = tracingChannel<unknown, HandlerTraceContext>(ChannelName.handler)
  const errors: unknown[] = []
  const listeners = { start () {}, end () {}, asyncStart () {}, asyncEnd () {}, error (context: HandlerTraceContext) { errors.push(context.error) } }
  handler.subscribe(listeners)
  t.after(() => handler.unsubscribe(listeners))
  const app = await createApp(t, { handshakeMessage: false, metrics: { promClient: false } })
  app.hub.route({ url: '/ws', async onMessage () { throw new Error('later') } })
  const url = await listen(app)
  const client = await connect(`${url}/ws`)
  client.socket.send('x')
  assert.equal((await client.closed).code, 1011)
  assert.deepEqual(errors.map(error => (error as Error).message), ['later'])
  assert.equal(app.hub.stats().handlerErrors, 1)
})
