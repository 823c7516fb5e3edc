import { expect, test } from 'tstyche'
import Fastify from 'fastify'
import {
  Type,
  defineRoute,
  type EventsOf,
  type Hub,
  type MessagesOf,
  type RepliesOf,
  type StaticMap
} from '../dist/index.js'

// What an application writes to type app.hub.broadcastEvent: its hub-wide events.
declare module '../dist/index.js' {
  interface HubEvents {
    notice: { text: string }
  }
}

const app = Fastify()

const say = Type.Object({ text: Type.String({ minLength: 1 }) })
const join = Type.Object({ room: Type.String() })
const said = Type.Object({ from: Type.String(), text: Type.String() })
const joined = Type.Object({ joined: Type.String() })

test('data in each handler is the static type of its message schema, exactly', () => {
  app.hub.route({
    url: '/chat',
    messages: { say, join, count: Type.Integer() },
    handlers: {
      say (_client, data) {
        expect(data).type.toBe<{ text: string }>()
        expect(data).type.not.toBe<unknown>()
      },
      join (_client, data) { expect(data).type.toBe<{ room: string }>() },
      count (_client, data) { expect(data).type.toBe<number>() }
    }
  })
})

test('a handler for an undeclared type, or a declared type without a handler, is an error', () => {
  expect(app.hub.route).type.not.toBeCallableWith({
    url: '/chat',
    messages: { say },
    handlers: { say () {}, shout () {} }
  })
  expect(app.hub.route).type.not.toBeCallableWith({
    url: '/chat',
    messages: { say, join },
    handlers: { say () {} }
  })
  expect(app.hub.route).type.not.toBeCallableWith({
    url: '/chat',
    handlers: { say () {} }
  })
  expect(app.hub.route).type.toBeCallableWith({
    url: '/chat',
    messages: { say },
    handlers: { say () {} }
  })
})

test('the handler of a message with a declared reply must return that reply', () => {
  expect(app.hub.route).type.toBeCallableWith({
    url: '/chat',
    messages: { join },
    replies: { join: joined },
    handlers: { join: async () => ({ joined: 'lobby' }) }
  })
  expect(app.hub.route).type.not.toBeCallableWith({
    url: '/chat',
    messages: { join },
    replies: { join: joined },
    handlers: { join: async () => ({ joined: 42 }) }
  })
  expect(app.hub.route).type.not.toBeCallableWith({
    url: '/chat',
    messages: { join },
    replies: { join: joined },
    handlers: { join: () => {} }
  })
  // Without a declared reply, any return value is the reply.
  expect(app.hub.route).type.toBeCallableWith({
    url: '/chat',
    messages: { join },
    handlers: { join: () => ({ anything: [1] }) }
  })
})

test('client.sendEvent and client.hub.broadcastEvent take the route events only, with their payloads', () => {
  app.hub.route({
    url: '/chat',
    params: Type.Object({ name: Type.String() }),
    onUpgrade: () => ({ name: 'ann' }),
    messages: { say },
    events: { said, left: Type.String() },
    handlers: {
      say (client, data) {
        expect(client.params.name).type.toBe<string>()
        expect(client.sendEvent).type.toBeCallableWith('said', { from: client.params.name, text: data.text })
        expect(client.sendEvent).type.toBeCallableWith('left', 'ann')
        expect(client.sendEvent('left', 'ann')).type.toBe<boolean>()
        expect(client.sendEvent).type.not.toBeCallableWith('sayd', { from: 'a', text: 'b' })
        expect(client.sendEvent).type.not.toBeCallableWith('said', { from: 1, text: 'b' })
        expect(client.sendEvent).type.not.toBeCallableWith('said', { from: 'a' })
        expect(client.sendEvent).type.not.toBeCallableWith('left', 1)
        expect(client.sendEvent).type.not.toBeCallableWith('notice', { text: 'hub-wide, not this route' })
        expect(client.hub.broadcastEvent).type.toBeCallableWith('said', { from: 'a', text: 'b' }, { room: 'lobby', except: client })
        expect(client.hub.broadcastEvent).type.not.toBeCallableWith('sayd', { from: 'a', text: 'b' })
        expect(client.hub.broadcastEvent).type.not.toBeCallableWith('said', { text: 'b' })
        expect(client.hub).type.toBe<Hub<{ said: { from: string, text: string }, left: string }>>()
        expect(client.hub.sendEventTo).type.toBeCallableWith('some-id', 'said', { from: 'a', text: 'b' })
        expect(client.hub.sendEventTo('some-id', 'left', 'x')).type.toBe<boolean>()
        expect(client.hub.sendEventTo).type.not.toBeCallableWith('some-id', 'said', { from: 'a' })
        expect(client.hub.sendEventTo).type.not.toBeCallableWith('some-id', 'nope', 'x')
      }
    },
    onOpen (client) {
      expect(client.recovered).type.toBe<boolean>()
      expect(client.sendEvent).type.toBeCallableWith('left', 'x')
      expect(client.sendEvent).type.not.toBeCallableWith('nope', 'x')
    }
  })
})

test('app.hub.broadcastEvent takes the events of the HubEvents interface the application augments', () => {
  expect(app.hub.broadcastEvent).type.toBeCallableWith('notice', { text: 'maintenance at 5' })
  expect(app.hub.broadcastEvent).type.toBeCallableWith('notice', { text: 'to a room' }, { room: ['a', 'b'] })
  expect(app.hub.broadcastEvent('notice', { text: 'x' })).type.toBe<number>()
  expect(app.hub.broadcastEvent).type.not.toBeCallableWith('said', { from: 'a', text: 'b' })
  expect(app.hub.broadcastEvent).type.not.toBeCallableWith('notice', { text: 1 })
  // A client of an untyped route may be sent the hub-wide events.
  app.hub.route({
    url: '/plain',
    onOpen (client) {
      expect(client.sendEvent).type.toBeCallableWith('notice', { text: 'x' })
      expect(client.sendEvent).type.not.toBeCallableWith('said', { from: 'a', text: 'b' })
      expect(client.hub).type.toBe<Hub>()
    }
  })
})

test('defineRoute keeps the route types: register it, and read its messages, events and replies', () => {
  const chatRoute = defineRoute({
    url: '/chat',
    messages: { say, join },
    events: { said },
    replies: { join: joined },
    handlers: {
      say (client, data) {
        expect(data).type.toBe<{ text: string }>()
        client.hub.broadcastEvent('said', { from: client.id, text: data.text })
      },
      join (client, data) {
        client.join(data.room)
        return { joined: data.room }
      }
    }
  })
  expect(app.hub.route).type.toBeCallableWith(chatRoute)
  expect<MessagesOf<typeof chatRoute>>().type.toBe<{ say: { text: string }, join: { room: string } }>()
  expect<EventsOf<typeof chatRoute>>().type.toBe<{ said: { from: string, text: string } }>()
  expect<RepliesOf<typeof chatRoute>>().type.toBe<{ say: unknown, join: { joined: string } }>()
  expect<StaticMap<{ said: typeof said }>>().type.toBe<EventsOf<typeof chatRoute>>()
  expect(defineRoute).type.not.toBeCallableWith({
    url: '/chat',
    messages: { say },
    handlers: { say () {}, shout () {} }
  })
})

test('a typed client can be left out of any broadcast', () => {
  app.hub.route({
    url: '/chat',
    events: { said },
    onOpen (client) {
      expect(app.hub.broadcast).type.toBeCallableWith('x', { except: client })
      expect(app.hub.broadcastEvent).type.toBeCallableWith('notice', { text: 'x' }, { except: client })
      expect(app.hub.broadcast).type.not.toBeCallableWith('x', { except: 42 })
    }
  })
})
