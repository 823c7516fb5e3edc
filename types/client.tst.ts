import { expect, test } from 'tstyche'
import WebSocket from 'ws'
import { Type, defineRoute } from '../dist/index.js'
import { createClient, HubClientError, type ClientSession, type ClientStatus, type HubClient, type HubClientErrorCode, type IncomingData, type PresenceEvent } from '../dist/client/index.js'

export const chatRoute = defineRoute({
  url: '/chat',
  messages: {
    say: Type.Object({ text: Type.String() }),
    join: Type.Object({ room: Type.String() }),
    ping: Type.Unknown()
  },
  events: { said: Type.Object({ from: Type.String(), text: Type.String() }) },
  replies: { join: Type.Object({ members: Type.Integer() }) },
  handlers: {
    say () {},
    join: () => ({ members: 1 }),
    ping () {}
  }
})

export const rawRoute = defineRoute({ url: '/raw', onMessage () {} })

const client = createClient<typeof chatRoute>('ws://localhost/chat', { WebSocket })

test('WebSocket from ws and the global WebSocket fit the constructor option', () => {
  expect(createClient('ws://x', { WebSocket })).type.toBe<HubClient>()
  expect(createClient('ws://x', { WebSocket: globalThis.WebSocket })).type.toBe<HubClient>()
  expect(createClient('ws://x', { WebSocket: Map })).type.toRaiseError()
})

test('send takes the route\'s message types with their data, nothing else', () => {
  expect(client.send('say', { text: 'hi' })).type.toBe<void>()
  expect(client.send('ping', 42)).type.toBe<void>()
  expect(client.send('nope', { text: 'hi' })).type.toRaiseError()
  expect(client.send('say', { text: 1 })).type.toRaiseError()
  expect(client.send('say', { txt: 'hi' })).type.toRaiseError()
  expect(client.send('say')).type.toRaiseError()
  expect(client.send(new Uint8Array(2))).type.toBe<void>()
})

test('request resolves the declared reply, or unknown without one', () => {
  expect(client.request('join', { room: 'a' })).type.toBe<Promise<{ members: number }>>()
  expect(client.request('say', { text: 'a' }, { timeout: 10 })).type.toBe<Promise<unknown>>()
  expect(client.request('join', { room: 1 })).type.toRaiseError()
  expect(client.request('said', { from: 'a', text: 'b' })).type.toRaiseError()
  expect(client.request('join', { room: 'a' }, { timeout: '1s' })).type.toRaiseError()
})

test('on gives each event its data; lifecycle names their own', () => {
  client.on('said', data => { expect(data).type.toBe<{ from: string, text: string }>() })
  client.on('status', status => { expect(status).type.toBe<ClientStatus>() })
  client.on('message', data => { expect(data).type.toBe<IncomingData>() })
  client.on('error', error => { expect(error).type.toBe<HubClientError>() })
  expect(client.on('said', () => {})).type.toBe<() => void>()
  expect(client.on('say', () => {})).type.toRaiseError()
  expect(client.on('nope', () => {})).type.toRaiseError()
  expect(client.status).type.toBe<ClientStatus>()
  expect(client.dropped).type.toBe<number>()
})

test('an untyped client sends raw frames only', () => {
  const raw = createClient('ws://localhost/raw', { WebSocket })
  expect(raw.send('text')).type.toBe<void>()
  expect(raw.send(new ArrayBuffer(1))).type.toBe<void>()
  expect(raw.send('say', { text: 'hi' })).type.toRaiseError()
  expect(raw.request('say', {})).type.toRaiseError()
  expect(raw.on('said', () => {})).type.toRaiseError()
  const typedRaw = createClient<typeof rawRoute>('ws://localhost/raw', { WebSocket })
  expect(typedRaw.send('text')).type.toBe<void>()
  expect(typedRaw.send('say', {})).type.toRaiseError()
})

test('options are checked', () => {
  expect(createClient('ws://x', { handshake: (text: string) => text === 'hi' })).type.toBe<HubClient>()
  expect(createClient('ws://x', { handshake: false, reconnect: false })).type.toBe<HubClient>()
  expect(createClient('ws://x', { overflow: 'drop-newest' })).type.toRaiseError()
  expect(createClient('ws://x', { reconnect: { initialDelay: '1' } })).type.toRaiseError()
  expect(new HubClientError('timeout', 'late').code).type.toBe<HubClientErrorCode>()
  expect(new HubClientError('room_full', 'full').code).type.not.toBe<unknown>()
})

test('the session: a property and an event, neither an event name a route may take', () => {
  expect(client.session).type.toBe<ClientSession | undefined>()
  expect(client.on('session', (session) => {
    expect(session.id).type.toBe<string>()
    expect(session.recovered).type.toBe<boolean>()
  })).type.toBe<() => void>()
  expect(client.session?.id).type.toBe<string | undefined>()
})

test('presence events: $join and $leave carry the room, the other client\'s id and its shared params', () => {
  expect(client.on('$join', ({ room, id, params }) => {
    expect(room).type.toBe<string>()
    expect(id).type.toBe<string>()
    expect(params).type.toBe<Readonly<Record<string, unknown>>>()
  })).type.toBe<() => void>()
  expect(client.on('$leave', (event) => {
    expect(event).type.toBe<PresenceEvent>()
  })).type.toBe<() => void>()
  expect(createClient('ws://x').on('$join', event => event.id)).type.toBe<() => void>()
  expect(client.on('$join', (event: { room: number }) => event)).type.toRaiseError()
})
