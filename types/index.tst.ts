import { expect, test } from 'tstyche'
import Fastify from 'fastify'
import fastifyWsHub, {
  Type,
  fastifyWsHub as namedPlugin,
  WebsocketHandshakeSuccess,
  type Client,
  type Hub,
  type HubStats,
  type HubAdapter,
  type NoParams,
  type RecoveryStore,
  type ClientInfo,
  type ControlTarget,
  NodesTimeoutError
} from '../dist/index.js'
import { Cluster } from 'ioredis'
import { redisAdapter } from '../dist/adapters/redis/index.js'

const app = Fastify()

test('the default and named exports are the same plugin; constants are string literals', () => {
  expect(namedPlugin).type.toBe(fastifyWsHub)
  expect(WebsocketHandshakeSuccess).type.toBe<'{"code":2000,"msg":"ws连接成功","data":""}'>()
})

test('register takes the SPEC options and rejects wrong ones', () => {
  expect(app.register).type.toBeCallableWith(fastifyWsHub, { heartbeat: { interval: 20_000, maxFailures: 4 } })
  expect(app.register).type.toBeCallableWith(fastifyWsHub, { heartbeat: false, handshakeMessage: false })
  expect(app.register).type.toBeCallableWith(fastifyWsHub, { handshakeMessage: (client: Client) => `hi ${client.id}` })
  expect(app.register).type.not.toBeCallableWith(fastifyWsHub, { heartbeat: { interval: '20s' } })
  expect(app.register).type.toBeCallableWith(fastifyWsHub, { recovery: { maxDisconnection: 120_000, maxMessages: 10_000 } })
  expect(app.register).type.toBeCallableWith(fastifyWsHub, { recovery: true })
  expect(app.register).type.not.toBeCallableWith(fastifyWsHub, { recovery: { maxDisconnection: '2m' } })
  expect(app.register).type.not.toBeCallableWith(fastifyWsHub, { maxPayload: '64k' })
})

test('fastify.hub is the Hub, with its counters typed', () => {
  expect(app.hub).type.toBe<Hub>()
  expect(app.hub.onlineCount()).type.toBe<number>()
  expect(app.hub.clusterCount()).type.toBe<Promise<number>>()
  expect(app.hub.broadcast('x', { room: ['a', 'b'] })).type.toBe<number>()
  expect(app.hub.sendTo('id', { any: 'json' })).type.toBe<boolean>()
  expect(app.hub.stats()).type.toBe<HubStats>()
  expect(app.hub.stats().dropped).type.toBe<number>()
  expect(app.hub.broadcast).type.not.toBeCallableWith('x', { room: 5 })
})

test('client.params is inferred from the route params schema', () => {
  app.hub.route({
    url: '/ws',
    params: Type.Object({ userId: Type.String(), admin: Type.Boolean() }),
    onUpgrade: () => ({ userId: 'u1', admin: false }),
    onOpen (client) {
      expect(client.params).type.toBe<{ userId: string, admin: boolean }>()
      expect(client.params.userId).type.toBe<string>()
    },
    onMessage (client, data, isBinary) {
      expect(data).type.toBe<string | Buffer>()
      expect(isBinary).type.toBe<boolean>()
      expect(client.send('text')).type.toBe<boolean>()
    },
    onClose (_client, code, reason) {
      expect(code).type.toBe<number>()
      expect(reason).type.toBe<string>()
    }
  })
})

test('onUpgrade must return what the params schema describes', () => {
  expect(app.hub.route).type.not.toBeCallableWith({
    url: '/ws',
    params: Type.Object({ userId: Type.String() }),
    onUpgrade: () => ({ userId: 42 })
  })
})

test('the upgrade request is typed from the route schema', () => {
  app.hub.route({
    url: '/ws',
    schema: { querystring: Type.Object({ token: Type.String() }) },
    onUpgrade (request) {
      expect(request.query.token).type.toBe<string>()
      return {}
    }
  })
})

test('without params nor onUpgrade, params are empty; without a schema, onUpgrade infers them', () => {
  app.hub.route({
    url: '/plain',
    onOpen (client) { expect(client.params).type.toBe<NoParams>() }
  })
  app.hub.route({
    url: '/inferred',
    onUpgrade: async () => ({ room: 'lobby' }),
    onOpen (client) { expect(client.params.room).type.toBe<string>() }
  })
})

test('route onError is the client hook, and Fastify route options are accepted', () => {
  app.hub.route({
    url: '/ws',
    config: { rateLimit: false },
    onRequest: async () => {},
    onError (client, error) {
      expect(client.id).type.toBe<string>()
      expect(error).type.toBe<Error>()
    }
  })
  expect(app.hub.route).type.not.toBeCallableWith({ url: '/ws', onMessage: 'nope' })
})

test('client members are typed as the SPEC says', () => {
  app.hub.route({
    url: '/ws',
    onOpen (client) {
      expect(client.state).type.toBe<'open' | 'closing' | 'closed'>()
      expect(client.rooms).type.toBe<ReadonlySet<string>>()
      expect(client.heartbeatFailures).type.toBe<number>()
      expect(client.hub).type.toBe<Hub>()
      expect(client.close).type.toBeCallableWith(4000, 'reason')
      expect(client.close).type.not.toBeCallableWith('4000')
      expect(client.join('room')).type.toBe<Promise<void>>()
    }
  })
})

test('the Redis adapter is a HubAdapter, on a Redis or a Redis Cluster', () => {
  expect(redisAdapter({ url: 'redis://127.0.0.1:6379' })).type.toBeAssignableTo<HubAdapter>()
  expect(redisAdapter({ cluster: [{ host: '127.0.0.1', port: 7000 }, '127.0.0.1:7001', 7002] })).type.toBeAssignableTo<HubAdapter>()
  // It keeps history and sessions: a hub with `recovery` can use it.
  expect(redisAdapter().recovery).type.toBe<RecoveryStore>()
  expect(redisAdapter).type.toBeCallableWith({ client: new Cluster([7000]), unsubscribeDelay: 0 })
  expect(redisAdapter).type.not.toBeCallableWith({ cluster: 'localhost:7000' })
})

test('client.request is typed from the route schema in every client hook', () => {
  app.hub.route({
    url: '/typed',
    schema: {
      querystring: Type.Object({ token: Type.String(), page: Type.Number() }),
      headers: Type.Object({ 'x-tenant': Type.String() })
    },
    onOpen (client) {
      expect(client.request.query).type.toBe<{ token: string, page: number }>()
      expect(client.request.query.token).type.toBe<string>()
      expect(client.request.headers['x-tenant']).type.toBe<string>()
      expect(client.request.query).type.not.toHaveProperty('tokne')
    },
    onMessage (client) {
      expect(client.request.query.page).type.toBe<number>()
      expect(client.request.query).type.not.toHaveProperty('pages')
    },
    onError (client) { expect(client.request.query.token).type.toBe<string>() },
    onClose (client) { expect(client.request.query.token).type.toBe<string>() }
  })
})

test('with params and a schema both typed, a typed client is still a Client of the hub', () => {
  app.hub.route({
    url: '/both',
    schema: { querystring: Type.Object({ token: Type.String() }) },
    params: Type.Object({ userId: Type.String() }),
    onUpgrade: (request) => ({ userId: request.query.token }),
    onOpen (client) {
      expect(client.params.userId).type.toBe<string>()
      expect(client.request.query.token).type.toBe<string>()
      expect(app.hub.broadcast).type.toBeCallableWith('x', { except: client })
    }
  })
})

test('without a schema, client.request is a plain FastifyRequest', () => {
  app.hub.route({
    url: '/untyped',
    onOpen (client) { expect(client.request.query).type.toBe<unknown>() }
  })
})

test('cluster-wide control: fetchClients, join, leave, disconnect by id or room, node messages', () => {
  expect(app.hub.fetchClients()).type.toBe<Promise<Array<ClientInfo<Record<string, unknown>>>>>()
  expect(app.hub.fetchClients<{ userId: string }>({ room: 'lobby', timeout: 1000 })).type.toBe<Promise<Array<ClientInfo<{ userId: string }>>>>()
  expect(app.hub.fetchClients).type.not.toBeCallableWith({ rooms: ['lobby'] })
  expect(app.hub.join('client-id', 'lobby')).type.toBe<Promise<number>>()
  expect(app.hub.leave({ room: 'lobby' }, 'other')).type.toBe<Promise<number>>()
  expect(app.hub.join).type.not.toBeCallableWith({ id: 'client-id' }, 'lobby')
  expect(app.hub.disconnect('client-id')).type.toBe<Promise<number>>()
  expect(app.hub.disconnect).type.toBeCallableWith({ room: 'lobby' }, 4000, 'bye')
  expect(app.hub.disconnect).type.not.toBeCallableWith({ room: 'lobby' }, '4000')
  expect(app.hub.emitToNodes('reload', { at: 1 })).type.toBe<boolean>()
  const stop = app.hub.onNodeMessage<{ at: number }>('reload', (data, fromNodeId) => {
    expect(data).type.toBe<{ at: number }>()
    expect(fromNodeId).type.toBe<string>()
  })
  expect(stop).type.toBe<() => void>()
  expect(app.register).type.toBeCallableWith(fastifyWsHub, { controlTimeout: 2000 })
  expect<NodesTimeoutError['missing']>().type.toBe<number>()
  expect<ControlTarget>().type.toBe<string | { readonly room: string }>()
})
