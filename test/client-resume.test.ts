// The client's side of session recovery, against a small `ws` server in this file that speaks the
// protocol (handshake, `$session`, events with `pos`, `$resume` as the first frame of a `_resume=1`
// connection) — so that the client is held to the wire format independently of the hub.
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { test, type TestContext } from 'node:test'
import type { TObject, TString } from '@sinclair/typebox'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import { createClient, type ClientOptions, type ClientSession, type HubClient, type WebSocketConstructor } from '../lib/client/index.ts'
import { DEFAULT_HANDSHAKE } from '../lib/client/options.ts'
import { readPosition, resumeUrl } from '../lib/client/wire.ts'

/** The route the fake server serves, typed as a definition's schemas type it. */
interface Route {
  messages: { say: TObject<{ text: TString }> }
  events: { said: TObject<{ text: TString }>, joined: TObject<{ room: TString }> }
}

/** One connection the fake server accepted: its URL and the text frames it received. */
interface Connection {
  readonly url: string
  readonly socket: WebSocket
  readonly frames: string[]
  /** Resolves once `count` frames have arrived, with all of them. */
  received (count: number): Promise<string[]>
  /** Sends the default handshake message. */
  handshake (): void
  /** Sends a `$session` frame. */
  session (id: string, token: string, recovered: boolean): void
  /** Sends an event frame, with `pos` when given. */
  event (type: string, data: unknown, pos?: unknown): void
}

/** A `ws` server on a free loopback port that hands over each connection it accepts. */
async function startServer (t: TestContext): Promise<{ url: string, next (): Promise<Connection>, readonly count: number }> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await new Promise<void>(resolve => server.once('listening', resolve))
  t.after(() => new Promise<void>(resolve => {
    for (const socket of server.clients) socket.terminate()
    server.close(() => resolve())
  }))
  const accepted: Connection[] = []
  let taken = 0
  server.on('connection', (socket, request) => {
    const frames: string[] = []
    socket.on('message', (data: RawData) => { frames.push(data.toString()) })
    const write = (value: unknown): void => { socket.send(JSON.stringify(value)) }
    accepted.push({
      url: request.url ?? '',
      socket,
      frames,
      async received (count) {
        await waitFor(() => frames.length >= count, `${count} frames (got ${frames.length})`)
        return frames.slice(0, count)
      },
      handshake: () => socket.send(DEFAULT_HANDSHAKE),
      session: (id, token, recovered) => write({ type: '$session', data: { id, token, recovered } }),
      event: (type, data, pos) => write(pos === undefined ? { type, data } : { type, data, pos })
    })
  })
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async next () {
      await waitFor(() => accepted.length > taken, 'a connection')
      return accepted[taken++] as Connection
    },
    get count () { return accepted.length }
  }
}

async function waitFor (condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** A client of the fake server, closed after the test, recording what it tells. */
function open (t: TestContext, url: string, options: ClientOptions = {}): {
  client: HubClient<Route>
  log: string[]
  sessions: ClientSession[]
  said: string[]
  messages: unknown[]
} {
  const client = createClient<Route>(url, { WebSocket: WebSocket as unknown as WebSocketConstructor, reconnect: { initialDelay: 10, maxDelay: 20 }, ...options })
  const log: string[] = []
  const sessions: ClientSession[] = []
  const said: string[] = []
  const messages: unknown[] = []
  client.on('status', status => log.push(`status:${status}`))
  client.on('session', session => {
    // The property is up to date when the event is told
    assert.equal(client.session, session)
    sessions.push(session)
    log.push(`session:${session.id}:${session.recovered}`)
  })
  client.on('said', data => { said.push(data.text); log.push(`said:${data.text}`) })
  client.on('message', data => messages.push(data))
  t.after(() => client.close())
  return { client, log, sessions, said, messages }
}

/** The `$resume` frame expected from a client. */
function resumeFrame (id: string, token: string, positions: Record<string, [string, number]>): unknown {
  return { type: '$resume', data: { id, token, positions } }
}

const statusIs = (client: { status: string }, status: string): Promise<void> =>
  waitFor(() => client.status === status, `status ${status} (is ${client.status})`)

test('first connection: no resume; $session after the handshake sets session and tells on(session), never as a message', async (t) => {
  const server = await startServer(t)
  const { client, log, messages } = open(t, `${server.url}/chat`)
  assert.equal(client.session, undefined)
  const c1 = await server.next()
  assert.equal(c1.url, '/chat')
  c1.handshake()
  c1.session('a', 't1', false)
  c1.event('said', { text: 'hello' }, ['*', 'e1', 1])
  await waitFor(() => log.length === 3, 'status, session and event')
  assert.deepEqual(log, ['status:open', 'session:a:false', 'said:hello'])
  assert.deepEqual(client.session, { id: 'a', recovered: false })
  assert.deepEqual(messages, [], '$session is not a message; an event with pos is an ordinary event')
  await sleep(20)
  assert.deepEqual(c1.frames, [], 'nothing sent on a first connection')
})

test('resume: _resume=1, $resume first with the last position per stream, before buffered sends; recovered session told', async (t) => {
  const server = await startServer(t)
  const { client, log, sessions, said, messages } = open(t, `${server.url}/chat`)
  const c1 = await server.next()
  c1.handshake()
  c1.session('a', 't1', false)
  c1.event('said', { text: 'b1' }, ['*', 'e1', 1])
  c1.event('said', { text: 'r1' }, ['r:lobby', 'e2', 7])
  c1.event('said', { text: 'b2' }, ['*', 'e1', 2])
  c1.event('joined', { room: 'lobby' }, ['c:a', 'e3', 1]) // no listener: goes to 'message', position kept
  c1.event('said', { text: 'r2' }, ['r:lobby', 'e2', 8])
  // Malformed positions are ignored; the events are still delivered
  for (const pos of [['*', 'e1', '9'], ['*', 9, 3], ['*', 'e1'], ['*', 'e1', -1], ['*', 'e1', 1.5], 'x', null, { stream: '*' }]) {
    c1.event('said', { text: 'bad' }, pos)
  }
  await waitFor(() => said.length === 12, 'the events')
  assert.deepEqual(said.slice(0, 4), ['b1', 'r1', 'b2', 'r2'])
  assert.equal(messages.length, 1)
  c1.socket.terminate()
  await statusIs(client, 'reconnecting')
  client.send('say', { text: 'while away 1' })
  client.send('say', { text: 'while away 2' })

  const c2 = await server.next()
  assert.equal(c2.url, '/chat?_resume=1')
  const [first] = await c2.received(1)
  assert.deepEqual(JSON.parse(first ?? ''), resumeFrame('a', 't1', { '*': ['e1', 2], 'r:lobby': ['e2', 8], 'c:a': ['e3', 1] }))
  await sleep(20)
  assert.equal(c2.frames.length, 1, 'buffered frames wait for the handshake')
  c2.handshake()
  c2.session('a', 't2', true)
  const frames = await c2.received(3)
  assert.deepEqual(frames.slice(1).map(frame => JSON.parse(frame)), [
    { type: 'say', data: { text: 'while away 1' } },
    { type: 'say', data: { text: 'while away 2' } }
  ])
  // Missed events, then live ones
  c2.event('said', { text: 'b3' }, ['*', 'e1', 3])
  c2.event('said', { text: 'r3' }, ['r:lobby', 'e2', 9])
  await waitFor(() => said.length === 14, 'the replay')
  assert.deepEqual(client.session, { id: 'a', recovered: true })
  assert.deepEqual(sessions, [{ id: 'a', recovered: false }, { id: 'a', recovered: true }])
  assert.deepEqual(log.filter(line => !line.startsWith('said:')), [
    'status:open', 'session:a:false', 'status:reconnecting', 'status:open', 'session:a:true'
  ])

  // The next resume carries the new token and the positions moved by the replay
  c2.socket.terminate()
  const c3 = await server.next()
  assert.equal(c3.url, '/chat?_resume=1')
  const [again] = await c3.received(1)
  assert.deepEqual(JSON.parse(again ?? ''), resumeFrame('a', 't2', { '*': ['e1', 3], 'r:lobby': ['e2', 9], 'c:a': ['e3', 1] }))
})

test('recovered:false: the new id and token are kept, the old positions forgotten', async (t) => {
  const server = await startServer(t)
  const { client, sessions } = open(t, `${server.url}/chat`)
  const c1 = await server.next()
  c1.handshake()
  c1.session('a', 't1', false)
  c1.event('said', { text: 'b1' }, ['*', 'e1', 4])
  c1.event('said', { text: 'r1' }, ['r:lobby', 'e2', 1])
  await waitFor(() => sessions.length === 1, 'the session')
  await sleep(20)
  c1.socket.terminate()

  const c2 = await server.next()
  const [first] = await c2.received(1)
  assert.deepEqual(JSON.parse(first ?? ''), resumeFrame('a', 't1', { '*': ['e1', 4], 'r:lobby': ['e2', 1] }))
  c2.handshake()
  c2.session('b', 'tb', false)
  await waitFor(() => sessions.length === 2, 'the second session')
  assert.deepEqual(client.session, { id: 'b', recovered: false })
  c2.socket.terminate()

  const c3 = await server.next()
  const [second] = await c3.received(1)
  assert.deepEqual(JSON.parse(second ?? ''), resumeFrame('b', 'tb', {}))
  c3.handshake()
  c3.session('b', 'tb2', true)
  c3.event('said', { text: 'mine' }, ['c:b', 'e9', 1])
  await waitFor(() => sessions.length === 3, 'the third session')
  await sleep(20)
  c3.socket.terminate()

  const c4 = await server.next()
  const [third] = await c4.received(1)
  assert.deepEqual(JSON.parse(third ?? ''), resumeFrame('b', 'tb2', { 'c:b': ['e9', 1] }))
})

test('a resumed connection lost before its $session: the same token and positions are tried again', async (t) => {
  const server = await startServer(t)
  const { sessions } = open(t, `${server.url}/chat`)
  const c1 = await server.next()
  c1.handshake()
  c1.session('a', 't1', false)
  c1.event('said', { text: 'b1' }, ['*', 'e1', 1])
  await waitFor(() => sessions.length === 1, 'the session')
  await sleep(20)
  c1.socket.terminate()
  const c2 = await server.next()
  const expected = resumeFrame('a', 't1', { '*': ['e1', 1] })
  assert.deepEqual(JSON.parse((await c2.received(1))[0] ?? ''), expected)
  c2.handshake()
  c2.socket.terminate()
  const c3 = await server.next()
  assert.equal(c3.url, '/chat?_resume=1')
  assert.deepEqual(JSON.parse((await c3.received(1))[0] ?? ''), expected)
})

test('the resume flag joins an existing query', async (t) => {
  const server = await startServer(t)
  const { sessions } = open(t, `${server.url}/chat?room=a&x=1`)
  const c1 = await server.next()
  assert.equal(c1.url, '/chat?room=a&x=1')
  c1.handshake()
  c1.session('a', 't1', false)
  await waitFor(() => sessions.length === 1, 'the session')
  c1.socket.terminate()
  const c2 = await server.next()
  assert.equal(c2.url, '/chat?room=a&x=1&_resume=1')
})

test('resumeUrl: ? or & as the URL needs, before any fragment', () => {
  assert.equal(resumeUrl('ws://h/chat'), 'ws://h/chat?_resume=1')
  assert.equal(resumeUrl('ws://h/chat?room=a'), 'ws://h/chat?room=a&_resume=1')
  assert.equal(resumeUrl('ws://h/chat?'), 'ws://h/chat?_resume=1')
  assert.equal(resumeUrl('ws://h/chat?room=a&'), 'ws://h/chat?room=a&_resume=1')
  assert.equal(resumeUrl('ws://h/chat#top'), 'ws://h/chat?_resume=1#top')
  assert.equal(resumeUrl('ws://h/chat?room=a#top'), 'ws://h/chat?room=a&_resume=1#top')
  assert.equal(resumeUrl('ws://h/chat#a?b&c'), 'ws://h/chat?_resume=1#a?b&c')
})

test('readPosition: a [stream, epoch, offset] triple or nothing', () => {
  assert.deepEqual(readPosition(['r:x', 'e', 0]), ['r:x', ['e', 0]])
  for (const pos of [undefined, null, 'x', 1, {}, [], ['*', 'e'], ['*', 'e', 1, 2], ['*', 'e', '1'], [1, 'e', 1], ['*', 'e', Number.NaN], ['*', 'e', Infinity], ['*', 'e', 2 ** 53]]) {
    assert.equal(readPosition(pos), undefined, JSON.stringify(pos))
  }
})

test('with handshake false, $resume still goes before the buffered frames', async (t) => {
  const server = await startServer(t)
  const { client, sessions } = open(t, `${server.url}/chat`, { handshake: false })
  // Sent as the client starts reconnecting: with no handshake to wait for, it may be open again at once
  client.on('status', status => { if (status === 'reconnecting') client.send('say', { text: 'queued' }) })
  const c1 = await server.next()
  c1.session('a', 't1', false)
  c1.event('said', { text: 'b1' }, ['*', 'e1', 5])
  await waitFor(() => sessions.length === 1, 'the session')
  await sleep(20)
  c1.socket.terminate()
  const c2 = await server.next()
  const frames = await c2.received(2)
  assert.deepEqual(frames.map(frame => JSON.parse(frame)), [
    resumeFrame('a', 't1', { '*': ['e1', 5] }),
    { type: 'say', data: { text: 'queued' } }
  ])
})

test('no session, no resume: a route without recovery reconnects as before', async (t) => {
  const server = await startServer(t)
  const { client, said } = open(t, `${server.url}/chat`)
  const c1 = await server.next()
  c1.handshake()
  c1.event('said', { text: 'plain' })
  c1.event('said', { text: 'positioned' }, ['*', 'e1', 1]) // a position alone does not make a session
  // A malformed $session is ignored
  c1.socket.send(JSON.stringify({ type: '$session', data: { id: 'a', recovered: true } }))
  c1.socket.send(JSON.stringify({ type: '$session', data: null }))
  await waitFor(() => said.length === 2, 'the events')
  await sleep(20)
  assert.equal(client.session, undefined)
  c1.socket.terminate()
  const c2 = await server.next()
  assert.equal(c2.url, '/chat')
  c2.handshake()
  await statusIs(client, 'open')
  await sleep(20)
  assert.deepEqual(c2.frames, [])
})

test('close by the app forgets the session', async (t) => {
  const server = await startServer(t)
  const { client, sessions } = open(t, `${server.url}/chat`)
  const c1 = await server.next()
  c1.handshake()
  c1.session('a', 't1', false)
  await waitFor(() => sessions.length === 1, 'the session')
  client.close()
  assert.equal(client.status, 'closed')
  assert.equal(client.session, undefined)
  await sleep(100)
  assert.equal(server.count, 1, 'no reconnection')
  // A new client on the same URL starts a fresh session: no resume
  const other = open(t, `${server.url}/chat`)
  const c2 = await server.next()
  assert.equal(c2.url, '/chat')
  c2.handshake()
  await statusIs(other.client, 'open')
  await sleep(20)
  assert.deepEqual(c2.frames, [])
})

test('$pos moves a position without an event; $session streams prune positions of rooms left; a resume frame refused 1009 starts afresh', async (t) => {
  const server = await startServer(t)
  const { client, log, messages } = open(t, `${server.url}/chat`)
  const c1 = await server.next()
  c1.handshake()
  c1.session('a', 't1', false)
  c1.event('said', { text: 'r1' }, ['r:left', 'e2', 3])
  c1.event('said', { text: 'b1' }, ['*', 'e1', 1])
  c1.socket.send(JSON.stringify({ type: '$pos', pos: ['r:kept', 'e3', 9] }))
  await waitFor(() => log.length === 4, 'open, session and two events')
  await sleep(20)
  assert.deepEqual(messages, [], '$pos is neither an event nor a message')
  c1.socket.terminate()

  const c2 = await server.next()
  assert.deepEqual(JSON.parse((await c2.received(1))[0] as string), resumeFrame('a', 't1', { 'r:left': ['e2', 3], '*': ['e1', 1], 'r:kept': ['e3', 9] }))
  c2.handshake()
  c2.socket.send(JSON.stringify({ type: '$session', data: { id: 'a', token: 't2', recovered: true, streams: ['*', 'r:kept', 'c:a'] } }))
  await waitFor(() => client.session?.recovered === true, 'the recovered session')
  c2.socket.terminate()

  const c3 = await server.next()
  assert.deepEqual(JSON.parse((await c3.received(1))[0] as string), resumeFrame('a', 't2', { '*': ['e1', 1], 'r:kept': ['e3', 9] }))
  // The hub found the frame too big: the next connection does not present the session again.
  c3.socket.close(1009, 'too big')
  const c4 = await server.next()
  assert.equal(c4.url, '/chat')
  await sleep(30)
  assert.deepEqual(c4.frames, [])
})
