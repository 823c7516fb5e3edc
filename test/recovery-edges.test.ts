// Session recovery at its edges, on one process: events that arrive while a resume is being set
// up, a node that misses events, a history store that fails, resume frames that never come or
// are not resume frames; and the pieces (frame parsing, replay order) on their own.
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { memoryAdapter, type HubAdapter, type HubNode, type RecordedEnvelope, type RecoveryStore } from '../dist/index.js'
import { replayOrder, addressedTo } from '../dist/recovery/replay.js'
import { parseResume, wantsResume, withPosition } from '../dist/recovery/wire.js'
import { sleep, waitFor } from './helpers.js'
import { checkTicks, rawSession, sessions, startRecoveryHub, tickClient, ticksOf } from './recovery-env.js'

/** A memory adapter whose history store a test can slow down or break, one method at a time. */
function controlledAdapter (): { adapter: HubAdapter, store: RecoveryStore, node: () => HubNode, override: Partial<RecoveryStore> } {
  const inner = memoryAdapter()
  const innerStore = inner.recovery as RecoveryStore
  const override: Partial<RecoveryStore> = {}
  let started: HubNode | undefined
  const store = new Proxy(innerStore, {
    get (target, name: keyof RecoveryStore) {
      return override[name] ?? target[name]
    }
  })
  const adapter: HubAdapter = {
    ...inner,
    recovery: store,
    start (node) {
      started = node
      return inner.start(node)
    }
  }
  return { adapter, store: innerStore, node: () => started as HubNode, override }
}

/**
 * A tick sent to one client as the history store would deliver it: recorded in the client's
 * stream at `offset` (the tick's `n` is its publisher's ordinal).
 */
function recordedTick (clientId: string, epoch: string, n: number, offset: number): RecordedEnvelope {
  return {
    kind: 'send',
    to: clientId,
    payload: Buffer.from(JSON.stringify({ type: 'tick', data: { n, from: 'hub', to: clientId } })),
    binary: false,
    position: { stream: `c:${clientId}`, epoch, offset },
    origin: { node: 'hub', ordinal: n, publishedAt: Date.now() }
  }
}

/** A session whose socket is gone (the hub saw the close): its id and token, for a resume. */
async function sessionLeft (t: TestContext, app: FastifyInstance, url: string): Promise<{ id: string, token: string }> {
  const first = await rawSession(t, url)
  const session = await first.session()
  first.socket.terminate()
  await waitFor(() => !app.hub.clients.has(session.id), 2000, 'gone')
  return session
}

test('events published while a resume is being set up come after the replay, none twice, none missing', async (t) => {
  const { adapter, store, override } = controlledAdapter()
  const { app, url } = await startRecoveryHub(t, { adapter })
  const hub = ticksOf(app)
  const first = await rawSession(t, url)
  const { id, token } = await first.session()
  first.socket.send(JSON.stringify({ type: 'join', data: { room: 'lobby' }, id: 1 }))
  await waitFor(() => first.frames.some(frame => (frame as { id?: number }).id === 1), 2000, 'joined')
  first.socket.terminate()
  await waitFor(() => !app.hub.clients.has(id), 2000, 'gone')
  let n = 0
  const publish = (count: number): void => {
    for (let i = 0; i < count; i++) {
      n++
      if (n % 3 === 0) hub.broadcastEvent('tick', { n, from: 'hub', to: '*' })
      else if (n % 3 === 1) hub.broadcastEvent('tick', { n, from: 'hub', to: 'lobby' }, { room: 'lobby' })
      else hub.sendEventTo(id, 'tick', { n, from: 'hub', to: id })
    }
  }
  publish(30)
  // Every read of the history takes a while: events published meanwhile land in both the second
  // read and the live queue, or in the live queue alone.
  let reads = 0
  override.read = async (stream, after) => {
    reads++
    publish(5)
    await sleep(50)
    return await store.read(stream, after)
  }
  const back = await rawSession(t, url, { id, token })
  assert.equal((await back.session()).recovered, true)
  publish(10)
  await waitFor(() => back.frames.filter(frame => frame.type === 'tick').length >= n, 3000, `${n} ticks`)
  await sleep(100)
  assert.ok(reads >= 6, `the history was read twice per stream (${reads} reads)`)
  const log = { ticks: back.frames.filter(frame => frame.type === 'tick').map(frame => frame.data as { n: number, from: string, to: string }), sessions: [] }
  assert.equal(checkTicks(log, { hub: n }), '')
})

test('a node that misses events of a stream closes its clients with sessions (1013); they resume and get them', async (t) => {
  const { adapter, store, node } = controlledAdapter()
  const { app, url } = await startRecoveryHub(t, { adapter })
  const { client, log } = tickClient(t, url)
  await sessions(log, 1)
  const id = log.sessions[0]?.id as string
  const hub = ticksOf(app)
  hub.sendEventTo(id, 'tick', { n: 1, from: 'hub', to: id })
  await waitFor(() => log.ticks.length === 1, 2000, 'a tick')
  // Offset 3 reaches the node, 2 never did (as when Redis cut its subscription).
  const top = await store.top(`c:${id}`)
  const epoch = top?.epoch as string
  node().deliver(recordedTick(id, epoch, 3, 3))
  await sessions(log, 2)
  assert.deepEqual(log.sessions[1], { id, recovered: true })
  hub.sendEventTo(id, 'tick', { n: 2, from: 'hub', to: id })
  await waitFor(() => log.ticks.length === 2, 2000, 'the next tick')
  assert.equal(checkTicks(log, { hub: 2 }), '')
  assert.equal(client.status, 'open')
})

test('a history store that fails: clients open without a session, events still reach them, resumes get fresh sessions', async (t) => {
  const { adapter, override } = controlledAdapter()
  const { app, url, opens } = await startRecoveryHub(t, { adapter })
  const hub = ticksOf(app)
  override.createSession = async () => { throw new Error('store down') }
  const plain = await rawSession(t, url)
  await waitFor(() => opens.seen.length === 1, 2000, 'opened')
  hub.broadcastEvent('tick', { n: 1, from: 'hub', to: '*' })
  await waitFor(() => plain.frames.length === 1, 2000, 'the tick')
  assert.deepEqual(plain.frames.map(frame => [frame.type, frame.pos]), [['tick', undefined]], 'no $session, no position')
  assert.equal(opens.seen[0]?.recovered, false)
  delete override.createSession

  // A store that cannot read sessions: the resume is answered with a fresh session.
  const owner = await rawSession(t, url)
  const { id, token } = await owner.session()
  owner.socket.terminate()
  await waitFor(() => !app.hub.clients.has(id), 2000, 'gone')
  override.readSession = async () => { throw new Error('store down') }
  const back = await rawSession(t, url, { id, token })
  assert.equal((await back.session()).recovered, false)
  delete override.readSession

  // A store that refuses to record: broadcastEvent and sendEventTo still reach this node's clients.
  const live = await rawSession(t, url)
  const liveSession = await live.session()
  override.record = () => false
  assert.equal(hub.broadcastEvent('tick', { n: 2, from: 'hub', to: '*' }), 3)
  assert.equal(hub.sendEventTo(liveSession.id, 'tick', { n: 3, from: 'hub', to: liveSession.id }), true)
  await waitFor(() => live.frames.filter(frame => frame.type === 'tick').length === 2, 2000, 'two ticks')
  assert.deepEqual(live.frames.filter(frame => frame.type === 'tick').map(frame => frame.pos), [undefined, undefined])
  delete override.record

  // A store that cannot tell a room's position: the join still resolves; the session does not keep the room.
  override.top = async () => { throw new Error('store down') }
  live.socket.send(JSON.stringify({ type: 'join', data: { room: 'lobby' }, id: 'j' }))
  await waitFor(() => live.frames.some(frame => (frame as { id?: string }).id === 'j'), 2000, 'joined')
  delete override.top

  // History that changes between the two reads of a resume: closed 1011, nothing half-replayed.
  live.socket.terminate()
  await waitFor(() => !app.hub.clients.has(liveSession.id), 2000, 'gone')
  let reads = 0
  override.read = async () => (++reads > 3 ? { ok: false, reason: 'trimmed' } : { ok: true, entries: [], top: null })
  const changed = await rawSession(t, url, { id: liveSession.id, token: liveSession.token })
  assert.equal(await changed.closed, 1011)
})

test('a socket that announces a resume must send it first: a binary frame gets a fresh session, silence is closed 1008, leaving frees its slot', async (t) => {
  const { app, url } = await startRecoveryHub(t, { readTimeout: 300, maxConnectionsPerIp: 1 })
  const binary = new WebSocket(`${url}?_resume=1`)
  t.after(() => binary.terminate())
  const frames: string[] = []
  binary.on('message', data => frames.push((data as Buffer).toString()))
  await new Promise(resolve => binary.once('open', resolve))
  binary.send(Buffer.from([1, 2, 3]))
  await waitFor(() => frames.some(text => text.includes('"$session"')), 2000, '$session')
  assert.match(frames.find(text => text.includes('"$session"')) ?? '', /"recovered":false/)
  binary.terminate()
  await waitFor(() => app.hub.clients.size === 0, 2000, 'gone')

  const silent = new WebSocket(`${url}?_resume=1`)
  t.after(() => silent.terminate())
  const [code, reason] = await new Promise<[number, string]>(resolve => silent.on('close', (closeCode, closeReason) => resolve([closeCode, closeReason.toString()])))
  assert.deepEqual([code, reason], [1008, 'expected a $resume frame first'])

  // One connection per IP: a socket that leaves before its resume frame gives its slot back.
  const leaving = new WebSocket(`${url}?_resume=1`)
  await new Promise(resolve => leaving.once('open', resolve))
  leaving.terminate()
  await sleep(100)
  const next = await rawSession(t, url)
  assert.equal((await next.session()).recovered, false)
})

test('resume frames: what is one and what is not', () => {
  const valid = { type: '$resume', data: { id: 'a', token: 'b', positions: { '*': ['e', 3], 'r:x': ['f', 0] } } }
  const parsed = parseResume(JSON.stringify(valid))
  assert.equal(parsed?.id, 'a')
  assert.deepEqual([...parsed?.positions ?? []], [['*', { epoch: 'e', offset: 3 }], ['r:x', { epoch: 'f', offset: 0 }]])
  assert.deepEqual([...parseResume(JSON.stringify({ type: '$resume', data: { id: 'a', token: 'b' } }))?.positions ?? []], [])
  const invalid: unknown[] = [
    'not json', null, [], { type: 'other', data: valid.data }, { type: '$resume' }, { type: '$resume', data: null },
    { type: '$resume', data: { id: '', token: 'b' } }, { type: '$resume', data: { id: 'a', token: 'x'.repeat(129) } },
    { type: '$resume', data: { id: 'a', token: 'b', positions: [] } }, { type: '$resume', data: { id: 'a', token: 'b', positions: 'x' } },
    { type: '$resume', data: { id: 'a', token: 'b', positions: { s: ['e'] } } }, { type: '$resume', data: { id: 'a', token: 'b', positions: { s: 'e' } } },
    { type: '$resume', data: { id: 'a', token: 'b', positions: { s: ['e', -1] } } }, { type: '$resume', data: { id: 'a', token: 'b', positions: { s: ['e', 1.5] } } },
    { type: '$resume', data: { id: 'a', token: 'b', positions: { s: [1, 1] } } },
    { type: '$resume', data: { id: 'a', token: 'b', positions: Object.fromEntries(Array.from({ length: 10_001 }, (_, index) => [`r:${index}`, ['e', 1]])) } }
  ]
  for (const frame of invalid) assert.equal(parseResume(typeof frame === 'string' ? frame : JSON.stringify(frame)), undefined, JSON.stringify(frame)?.slice(0, 80))
  assert.equal(wantsResume('/ticks?_resume=1'), true)
  assert.equal(wantsResume('/ticks?user=a&_resume=1'), true)
  assert.equal(wantsResume('/ticks?_resume=0'), false)
  assert.equal(wantsResume('/ticks'), false)
  assert.equal(wantsResume(undefined), false)
  assert.equal(withPosition(Buffer.from('{"type":"t","data":1}'), 'r:"x"', 'e', 7).toString(), '{"type":"t","data":1,"pos":["r:\\"x\\"","e",7]}')
})

test('replay order: each stream in offset order, each publisher in its order, the earliest first when both cannot hold', () => {
  const entry = (node: string, ordinal: number, publishedAt: number, offset: number) => ({
    offset, origin: { node, ordinal, publishedAt }, envelope: { kind: 'send' as const, to: 'c', payload: Buffer.from(`${node}${ordinal}`), binary: false }
  })
  const names = (items: ReturnType<typeof replayOrder>): string[] => items.map(item => item.entry.envelope.payload.toString())
  // Publisher p sent p1 to room a, then p2 to the client; q's clock is behind: by time alone q1 would go first.
  const ordered = replayOrder([
    { stream: 'r:a', epoch: 'e', entries: [entry('p', 1, 10, 1), entry('q', 2, 5, 2)] },
    { stream: 'c:c', epoch: 'e', entries: [entry('q', 1, 4, 1), entry('p', 2, 11, 2)] }
  ])
  assert.deepEqual(names(ordered), ['q1', 'p1', 'q2', 'p2'])
  // On a cluster two shards may order two publishers' messages both ways: a cycle; the streams' order holds.
  const cycle = replayOrder([
    { stream: 'r:a', epoch: 'e', entries: [entry('q', 2, 20, 1), entry('p', 1, 10, 2)] },
    { stream: 'r:b', epoch: 'e', entries: [entry('p', 2, 11, 1), entry('q', 1, 19, 2)] }
  ])
  assert.deepEqual(names(cycle), ['p2', 'q1', 'q2', 'p1'])
  const broadcast = { kind: 'broadcast' as const, payload: Buffer.alloc(0), binary: false, rooms: ['a', 'b'], via: 'b' }
  const origin = { node: 'p', ordinal: 1, publishedAt: 1 }
  assert.equal(addressedTo({ offset: 1, envelope: broadcast, origin }, 'c', new Set(['a', 'b'])), false)
  assert.equal(addressedTo({ offset: 1, envelope: broadcast, origin }, 'c', new Set(['b'])), true)
  assert.equal(addressedTo({ offset: 1, envelope: { ...broadcast, via: undefined }, origin }, 'c', new Set(['a', 'b'])), true)
  assert.equal(addressedTo({ offset: 1, envelope: { ...broadcast, except: 'c' }, origin }, 'c', new Set(['b'])), false)
})

/** Sends a request on a raw session and waits for its answer. */
async function request (session: Awaited<ReturnType<typeof rawSession>>, type: string, data: unknown, id: number): Promise<void> {
  session.socket.send(JSON.stringify({ type, id, data }))
  await waitFor(() => session.frames.some(frame => (frame as { id?: number }).id === id), 2000, `the answer to ${id}`)
}

test('a resume cannot start a room before the session joined it, nor everyone\'s stream before it began', async (t) => {
  const { app, url } = await startRecoveryHub(t)
  const hub = ticksOf(app)
  const member = await rawSession(t, url)
  await member.session()
  await request(member, 'join', { room: 'secret' }, 1)
  for (let n = 1; n <= 5; n++) hub.broadcastEvent('tick', { n, from: 'hub', to: 'secret' }, { room: 'secret' })
  for (let n = 1; n <= 3; n++) hub.broadcastEvent('tick', { n, from: 'hub', to: '*' })
  const late = await rawSession(t, url)
  const { id, token } = await late.session()
  await request(late, 'join', { room: 'secret' }, 1)
  hub.broadcastEvent('tick', { n: 6, from: 'hub', to: 'secret' }, { room: 'secret' })
  await waitFor(() => late.frames.some(frame => frame.type === 'tick'), 2000, 'tick 6')
  const positions = late.positions()
  const epoch = (positions['r:secret'] as [string, number])[0]
  late.socket.terminate()
  await waitFor(() => !app.hub.clients.has(id), 2000, 'gone')
  const allEpoch = (member.positions()['*'] as [string, number])[0]
  const back = await rawSession(t, url, { id, token, positions: { ...positions, 'r:secret': [epoch, 0], '*': [allEpoch, 0] } })
  assert.equal((await back.session()).recovered, true)
  await sleep(100)
  // It claims to have seen nothing: it gets what came after its join (tick 6), nothing from before
  // the join (1 to 5), nothing sent to everyone before its session began.
  assert.deepEqual(back.frames.filter(frame => frame.type === 'tick').map(frame => (frame.data as { n: number }).n), [6])
})

test('a broadcast to two rooms got through the first, then the first left: a resume does not give it again', async (t) => {
  const { app, url } = await startRecoveryHub(t)
  const client = await rawSession(t, url)
  const { id, token } = await client.session()
  await request(client, 'join', { room: 'A' }, 1)
  await request(client, 'join', { room: 'B' }, 2)
  ticksOf(app).broadcastEvent('tick', { n: 1, from: 'hub', to: 'A+B' }, { room: ['A', 'B'] })
  await waitFor(() => client.frames.some(frame => frame.type === '$pos'), 2000, 'the tick and B\'s position')
  assert.deepEqual(client.frames.filter(frame => frame.type === 'tick').length, 1)
  await request(client, 'leave', { room: 'A' }, 3)
  const positions = client.positions()
  client.socket.terminate()
  await waitFor(() => !app.hub.clients.has(id), 2000, 'gone')
  const back = await rawSession(t, url, { id, token, positions })
  assert.equal((await back.session()).recovered, true)
  await sleep(100)
  assert.deepEqual(back.frames.filter(frame => frame.type === 'tick'), [])
})

test('frames sent with the resume frame, in one TCP write, are handled after the opening, in order', async (t) => {
  const { app, url } = await startRecoveryHub(t)
  const { id, token } = await sessionLeft(t, app, url)
  const socket = new WebSocket(`${url}?_resume=1`)
  t.after(() => socket.terminate())
  const frames: string[] = []
  socket.on('message', data => frames.push((data as Buffer).toString()))
  await new Promise(resolve => socket.once('open', resolve))
  const tcp = (socket as unknown as { _socket: import('node:net').Socket })._socket
  tcp.cork()
  socket.send(JSON.stringify({ type: '$resume', data: { id, token, positions: {} } }))
  socket.send(JSON.stringify({ type: 'join', id: 7, data: { room: 'x' } }))
  socket.send(JSON.stringify({ type: 'join', id: 8, data: { room: 'y' } }))
  tcp.uncork()
  await waitFor(() => frames.some(text => text.includes('"id":8')), 2000, 'both joins answered')
  const order = frames.map(text => (JSON.parse(text) as { type?: string, id?: number })).filter(frame => frame.type === '$session' || frame.id !== undefined).map(frame => frame.id ?? frame.type)
  assert.deepEqual(order, ['$session', 7, 8])
})

test('an invalid frame right behind the resume frame closes that socket (1002) and nothing else', async (t) => {
  const { app, url } = await startRecoveryHub(t)
  const { id, token } = await sessionLeft(t, app, url)
  const socket = new WebSocket(`${url}?_resume=1`)
  t.after(() => socket.terminate())
  socket.on('error', () => {})
  await new Promise(resolve => socket.once('open', resolve))
  const closed = new Promise<number>(resolve => socket.on('close', code => resolve(code)))
  const tcp = (socket as unknown as { _socket: import('node:net').Socket })._socket
  tcp.cork()
  socket.send(JSON.stringify({ type: '$resume', data: { id, token, positions: {} } }))
  // A frame with the reserved opcode 3 (masked, empty): ws refuses it with 1002.
  tcp.write(Buffer.from([0x83, 0x80, 0, 0, 0, 0]))
  tcp.uncork()
  assert.equal(await closed, 1002)
  const other = await rawSession(t, url)
  assert.equal((await other.session()).recovered, false, 'the hub still serves')
})

test('params are compared in any key order; params JSON cannot hold open without a resumable session', async (t) => {
  let flip = false
  const { app, url } = await startRecoveryHub(t, {}, (user) => {
    flip = !flip
    if (user === 'big') return { big: 1n } as unknown as Record<string, unknown>
    return flip ? { user, role: 'member' } : { role: 'member', user }
  })
  const first = await rawSession(t, `${url}?user=ann`)
  const { id, token } = await first.session()
  first.socket.terminate()
  await waitFor(() => !app.hub.clients.has(id), 2000, 'gone')
  const back = await rawSession(t, `${url}?user=ann`, { id, token })
  assert.equal((await back.session()).recovered, true)

  const big = await rawSession(t, `${url}?user=big`)
  const bigSession = await big.session()
  big.socket.terminate()
  await waitFor(() => !app.hub.clients.has(bigSession.id), 2000, 'gone')
  const bigBack = await rawSession(t, `${url}?user=big`, { id: bigSession.id, token: bigSession.token })
  assert.equal((await bigBack.session()).recovered, false)
})

test('a short maxDisconnection: a connected session stays alive however long it stays connected', async (t) => {
  const { app, url } = await startRecoveryHub(t, { recovery: { maxDisconnection: 200, maxMessages: 100 } })
  const first = await rawSession(t, url)
  const { id, token } = await first.session()
  await sleep(1000)
  first.socket.terminate()
  await waitFor(() => !app.hub.clients.has(id), 2000, 'gone')
  const back = await rawSession(t, url, { id, token })
  assert.equal((await back.session()).recovered, true)
})

test('after a resume, an event the replay gave that comes again live is not given twice; one past a skip closes 1013', async (t) => {
  const { adapter, store, node } = controlledAdapter()
  const { app, url } = await startRecoveryHub(t, { adapter })
  const hub = ticksOf(app)
  const first = await rawSession(t, url)
  const { id, token } = await first.session()
  hub.sendEventTo(id, 'tick', { n: 1, from: 'hub', to: id })
  await waitFor(() => first.frames.some(frame => frame.type === 'tick'), 2000, 'a tick')
  const positions = first.positions()
  first.socket.terminate()
  await waitFor(() => !app.hub.clients.has(id), 2000, 'gone')
  hub.sendEventTo(id, 'tick', { n: 2, from: 'hub', to: id })
  const back = await rawSession(t, url, { id, token, positions })
  assert.equal((await back.session()).recovered, true)
  await waitFor(() => back.frames.some(frame => frame.type === 'tick'), 2000, 'the replay')
  const epoch = (await store.top(`c:${id}`))?.epoch as string
  // Offset 2 again, as a node whose subscription ran behind the history would bring it.
  node().deliver(recordedTick(id, epoch, 2, 2))
  await sleep(50)
  assert.deepEqual(back.frames.filter(frame => frame.type === 'tick').map(frame => (frame.data as { n: number }).n), [2])
  // Offset 4 after 2: this node never got 3.
  node().deliver(recordedTick(id, epoch, 4, 4))
  assert.equal(await back.closed, 1013)
})

test('a resume whose live events skip offsets while it is set up closes 1013 after what it could give', async (t) => {
  const { adapter, store, node, override } = controlledAdapter()
  const { app, url } = await startRecoveryHub(t, { adapter })
  const first = await rawSession(t, url)
  const { id, token } = await first.session()
  first.socket.terminate()
  await waitFor(() => !app.hub.clients.has(id), 2000, 'gone')
  ticksOf(app).sendEventTo(id, 'tick', { n: 1, from: 'hub', to: id })
  const epoch = (await store.top(`c:${id}`))?.epoch as string
  let injected = false
  override.read = async (stream, after) => {
    const read = await store.read(stream, after)
    if (!injected && stream === `c:${id}` && after !== null) {
      injected = true
      // Arrives live while the resume reads: offset 3, where 2 never came.
      node().deliver(recordedTick(id, epoch, 3, 3))
    }
    return read
  }
  const back = await rawSession(t, url, { id, token })
  assert.equal((await back.session()).recovered, true)
  assert.equal(await back.closed, 1013)
  assert.deepEqual(back.frames.filter(frame => frame.type === 'tick').map(frame => (frame.data as { n: number }).n), [1])
})
