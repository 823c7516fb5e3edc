import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import fastifyWsHub, { type FastifyWsHubOptions } from '../dist/index.js'
import { namedError } from './helpers.js'

const badOptions: Array<[string, unknown]> = [
  ['options', 'nope'],
  ['heartbeat', { heartbeat: 5 }],
  ['heartbeat.interval', { heartbeat: { interval: 0 } }],
  ['heartbeat.interval', { heartbeat: { interval: Number.NaN } }],
  ['heartbeat.maxFailures', { heartbeat: { maxFailures: 0 } }],
  ['heartbeat.maxFailures', { heartbeat: { maxFailures: 1.5 } }],
  ['heartbeat.payload', { heartbeat: { payload: 42 } }],
  ['heartbeat.payload', { heartbeat: { payload: 'x'.repeat(126) } }],
  ['handshakeMessage', { handshakeMessage: 12 }],
  ['maxPayload', { maxPayload: -1 }],
  ['maxPayload', { maxPayload: '64k' }],
  ['maxPayload', { maxPayload: () => 64 }],
  ['maxPayload', { maxPayload: null }],
  ['maxConnections', { maxConnections: [10] }],
  ['readTimeout', { readTimeout: -5 }],
  ['writeTimeout', { writeTimeout: 0 }],
  ['maxBufferedBytes', { maxBufferedBytes: 0.5 }],
  ['shutdownTimeout', { shutdownTimeout: Infinity }],
  ['allowedOrigins', { allowedOrigins: 5 }],
  ['allowedOrigins', { allowedOrigins: ['https://ok.example', 7] }],
  ['maxConnections', { maxConnections: 0 }],
  ['maxConnectionsPerIp', { maxConnectionsPerIp: -2 }],
  ['rateLimit', { rateLimit: 10 }],
  ['rateLimit.max', { rateLimit: { windowMs: 1000 } }],
  ['rateLimit.windowMs', { rateLimit: { max: 10 } }],
  ['adapter', { adapter: { publish () {} } }],
  ['websocket', { websocket: 'yes' }],
  ['recovery', { recovery: 'yes' }],
  ['recovery.maxDisconnection', { recovery: { maxDisconnection: 0 } }],
  ['recovery.maxMessages', { recovery: { maxMessages: 2.5 } }],
  ['recovery.maxMessage', { recovery: { maxMessage: 10 } }]
]

for (const [name, options] of badOptions) {
  test(`a bad "${name}" fails registration with FST_WS_HUB_INVALID_OPTION naming it`, async () => {
    const app = Fastify()
    app.register(fastifyWsHub, options as FastifyWsHubOptions)
    await assert.rejects(async () => { await app.ready() }, (error: Error & { code?: string }) => {
      assert.equal(error.code, 'FST_WS_HUB_INVALID_OPTION')
      assert.ok(error.message.includes(`"${name}"`), error.message)
      return true
    })
    await app.close()
  })
}

test('every option of the SPEC table is accepted with valid values', async () => {
  const app = Fastify()
  await app.register(fastifyWsHub, {
    heartbeat: { interval: 1000, maxFailures: 2, payload: Buffer.from('ping') },
    handshakeMessage: () => 'hi',
    maxPayload: 1024,
    readTimeout: 0,
    writeTimeout: 1000,
    maxBufferedBytes: 4096,
    shutdownTimeout: 500,
    allowedOrigins: [/^https:\/\/app\./, 'https://example.com'],
    maxConnections: 10,
    maxConnectionsPerIp: 2,
    rateLimit: { max: 5, windowMs: 1000 },
    websocket: { options: { clientTracking: true } }
  })
  assert.equal(app.hub.onlineCount(), 0)
  await app.close()
})

test('heartbeat: false and rateLimit: false are accepted', async () => {
  const app = Fastify()
  await app.register(fastifyWsHub, { heartbeat: false, rateLimit: false, handshakeMessage: false })
  await app.ready()
  await app.close()
})

const misspelt: Array<[string, string, unknown]> = [
  ['heartbeet', 'heartbeat', { heartbeet: { interval: 1000 } }],
  ['maxPayLoad', 'maxPayload', { maxPayLoad: 10 }],
  ['allowedOrigin', 'allowedOrigins', { allowedOrigin: 'https://app.example.com' }],
  ['heartbeat.intervall', 'interval', { heartbeat: { intervall: 1000 } }],
  ['rateLimit.windowMS', 'windowMs', { rateLimit: { max: 5, windowMS: 1000 } }]
]

for (const [name, closest, options] of misspelt) {
  test(`an unknown option "${name}" fails registration, naming it and "${closest}"`, async () => {
    const app = Fastify()
    app.register(fastifyWsHub, options as FastifyWsHubOptions)
    await assert.rejects(async () => { await app.ready() }, (error: Error & { code?: string }) => {
      assert.equal(error.code, 'FST_WS_HUB_INVALID_OPTION')
      assert.ok(error.message.includes(`"${name}"`), error.message)
      assert.ok(error.message.includes(`did you mean "${closest}"`), error.message)
      return true
    })
    await app.close()
  })
}

test('an unknown option far from every known one is listed with the known ones', async () => {
  const app = Fastify()
  app.register(fastifyWsHub, { compression: true } as FastifyWsHubOptions)
  await assert.rejects(async () => { await app.ready() }, /"compression": unknown option; known options: heartbeat, /)
  await app.close()
})

test('Fastify\'s own register options (prefix, logLevel, logSerializers) pass; websocket keys are left to @fastify/websocket', async () => {
  const app = Fastify()
  await app.register(fastifyWsHub, {
    prefix: '/x',
    logLevel: 'warn',
    logSerializers: {},
    heartbeat: false,
    websocket: { options: { clientTracking: true }, errorHandler: () => {} }
  } as FastifyWsHubOptions)
  assert.equal(app.hub.onlineCount(), 0)
  await app.close()
})

function refusedWith (name: string, reason: RegExp) {
  return namedError('FST_WS_HUB_INVALID_OPTION', name, reason)
}

async function registration (options: unknown, fastifyOptions = {}): Promise<void> {
  const app = Fastify(fastifyOptions)
  try {
    await app.register(fastifyWsHub, options as FastifyWsHubOptions)
    await app.ready()
  } finally {
    await app.close()
  }
}

const idleBeforePing: Array<[string, unknown]> = [
  ['shorter than', { heartbeat: { interval: 30_000 }, readTimeout: 20_000 }],
  ['equal to', { heartbeat: { interval: 30_000 }, readTimeout: 30_000 }],
  ['left at its default and shorter than', { heartbeat: { interval: 120_000 } }]
]

for (const [which, options] of idleBeforePing) {
  test(`a readTimeout ${which} the heartbeat interval is refused: healthy idle clients would be closed`, async () => {
    await assert.rejects(registration(options), refusedWith('readTimeout', /heartbeat\.interval .*closed as idle/))
  })
}

test('a short readTimeout passes with the heartbeat off, and a long heartbeat with readTimeout off', async () => {
  await registration({ heartbeat: false, readTimeout: 150 })
  await registration({ heartbeat: { interval: 200_000 }, readTimeout: 0 })
  await registration({ heartbeat: { interval: 30_000 }, readTimeout: 30_001 })
})

const notOrigins: Array<[string, unknown, RegExp]> = [
  ['allowedOrigins', 'example.com', /not an origin: expected scheme:\/\/host\[:port\]/],
  ['allowedOrigins[1]', ['https://ok.example', 'ok.example'], /not an origin/],
  ['allowedOrigins', 'https://app.example.com/', /not an origin/],
  ['allowedOrigins', 'https://app.example.com/chat', /not an origin/],
  ['allowedOrigins', 'https://user@app.example.com', /not an origin/],
  ['allowedOrigins', 'null', /not an origin/],
  ['allowedOrigins', 'https://App.Example.com', /never matches: browsers send "https:\/\/app\.example\.com"/],
  ['allowedOrigins', 'https://app.example.com:443', /never matches: browsers send "https:\/\/app\.example\.com"/],
  ['allowedOrigins', 'https://app.example.com:99999', /never matches: it is not a valid URL/],
  ['allowedOrigins[0]', ['*'], /only on its own/]
]

for (const [name, allowedOrigins, reason] of notOrigins) {
  test(`allowedOrigins ${JSON.stringify(allowedOrigins)} is refused: it is not what a browser sends as a page's Origin`, async () => {
    await assert.rejects(registration({ allowedOrigins }), refusedWith(name, reason))
  })
}

test('allowedOrigins takes origins of any scheme, with ports and IPv6 hosts, and "*" alone', async () => {
  await registration({ allowedOrigins: ['http://localhost:3000', 'https://app.example.com', 'chrome-extension://abcdefgh', 'http://[::1]:8080'] })
  await registration({ allowedOrigins: '*' })
})

function warningsOf (options: FastifyWsHubOptions): Promise<string[]> {
  const warnings: string[] = []
  const stream = { write (line: string) { warnings.push(JSON.parse(line).msg) } }
  return registration(options, { logger: { level: 'warn', stream } }).then(() => warnings)
}

test('a heartbeat interval under a second logs a warning with the ping rate per client; registration goes on', async () => {
  const warnings = await warningsOf({ heartbeat: { interval: 20 } })
  assert.equal(warnings.length, 1, warnings.join('\n'))
  assert.match(warnings[0] ?? '', /heartbeat\.interval is 20 ms, about 50 pings a second per client; the interval is in milliseconds/)
  assert.deepEqual(await warningsOf({ heartbeat: { interval: 1000 } }), [])
  assert.deepEqual(await warningsOf({ heartbeat: false }), [])
})
