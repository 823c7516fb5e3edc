import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { test, type TestContext } from 'node:test'
import type { FastifyServerOptions } from 'fastify'
import type { FastifyWsHubOptions } from '../dist/index.js'
import { createApp } from './helpers.js'
import { RawClient, upgradeRequest } from './raw-client.js'

const HOST = 'chat.example.com'
/** `chаt.example.com` with a Cyrillic `а` (U+0430): looks the same, is another host. */
const HOMOGLYPH = 'ch\u0430t.example.com'

async function originApp (t: TestContext, hubOptions: FastifyWsHubOptions = {}, fastifyOptions: FastifyServerOptions = {}) {
  const app = await createApp(t, hubOptions, fastifyOptions)
  let opened = 0
  app.hub.route({ url: '/ws', onOpen () { opened++ } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  /** The HTTP status an upgrade with these headers gets (101 = upgraded). */
  async function status (headers: Record<string, string>, extra: string[] = []): Promise<number> {
    const client = await RawClient.open(port, '/ws', {}, upgradeRequest('/ws', `127.0.0.1:${port}`, headers, extra))
    const code = await client.response
    client.destroy()
    return code
  }
  return { app, status, opened: () => opened }
}

test('default origin policy: only the request\'s own host may open a socket, refused with 403 before the upgrade', async (t) => {
  const { app, status, opened } = await originApp(t)
  const refused: Record<string, string> = {
    'foreign site': 'https://evil.example',
    'Cyrillic homoglyph of the host, as UTF-8 bytes': `http://${HOMOGLYPH}`,
    'Cyrillic homoglyph of the host, as a browser sends it (punycode)': new URL(`http://${HOMOGLYPH}`).origin,
    'opaque origin null (sandboxed iframe, file:)': 'null',
    'same host, other port': `http://${HOST}:8080`,
    'malformed origin (bad port)': `https://${HOST}:443x`,
    'sub-domain of the host': `http://evil.${HOST}`,
    'host as a prefix of a foreign domain': `http://${HOST}.evil.io`,
    'non-http scheme': `ftp://${HOST}`
  }
  for (const [what, origin] of Object.entries(refused)) {
    assert.equal(await status({ Host: HOST, Origin: origin }), 403, what)
  }
  // Two Origin headers are joined by Node into one value that is no origin at all.
  assert.equal(await status({ Host: HOST, Origin: `http://${HOST}` }, ['Origin: https://evil.example']), 403, 'duplicated Origin')
  assert.equal(app.hub.stats().rejectedOrigin, Object.keys(refused).length + 1)

  assert.equal(await status({ Host: HOST }), 101, 'no Origin (not a browser) passes')
  assert.equal(await status({ Host: HOST, Origin: `http://${HOST}` }), 101, 'same host passes')
  assert.equal(await status({ Host: `${HOST}:8080`, Origin: `https://${HOST}:8080` }), 101, 'same host and port passes')
  assert.equal(opened(), 3, 'only the three accepted upgrades opened a client')
})

test('allowedOrigins as a string allows exactly that origin', async (t) => {
  const { status } = await originApp(t, { allowedOrigins: 'https://app.example.com' })
  assert.equal(await status({ Origin: 'https://app.example.com' }), 101)
  assert.equal(await status({ Origin: 'https://app.example.com.evil.io' }), 403)
  assert.equal(await status({ Origin: 'http://app.example.com' }), 403)
  assert.equal(await status({ Origin: 'https://127.0.0.1' }), 403, 'the own-host default no longer applies')
})

test('allowedOrigins as a RegExp, also with the g flag, gives the same answer every time', async (t) => {
  const { status } = await originApp(t, { allowedOrigins: /^https:\/\/([a-z]+\.)?example\.com$/g })
  for (let i = 0; i < 3; i++) {
    assert.equal(await status({ Origin: 'https://a.example.com' }), 101, `attempt ${i}`)
  }
  assert.equal(await status({ Origin: 'https://example.com.evil.io' }), 403)
  assert.equal(await status({ Origin: `https://${HOMOGLYPH.replace('chat', 'x')}` }), 403)
})

test('allowedOrigins as an array mixes strings and RegExps', async (t) => {
  const { status } = await originApp(t, { allowedOrigins: ['https://a.example.com', /^https:\/\/b\.example\.org$/] })
  assert.equal(await status({ Origin: 'https://a.example.com' }), 101)
  assert.equal(await status({ Origin: 'https://b.example.org' }), 101)
  assert.equal(await status({ Origin: 'https://c.example.com' }), 403)
})

test('allowedOrigins as a function decides with the origin and the request', async (t) => {
  const seen: string[] = []
  const { status } = await originApp(t, {
    allowedOrigins: (origin, request) => {
      seen.push(`${origin} ${request.url}`)
      return origin === 'https://trusted.example'
    }
  })
  assert.equal(await status({ Origin: 'https://trusted.example' }), 101)
  assert.equal(await status({ Origin: 'https://untrusted.example' }), 403)
  assert.deepEqual(seen, ['https://trusted.example /ws', 'https://untrusted.example /ws'])
})

test('allowedOrigins \'*\' allows every origin and logs one warning at registration', async (t) => {
  const lines: Array<{ level: number, msg: string }> = []
  const stream = { write (line: string) { lines.push(JSON.parse(line)) } }
  const { status } = await originApp(t, { allowedOrigins: '*' }, { logger: { level: 'warn', stream } })
  for (const origin of ['https://evil.example', 'null', `http://${HOMOGLYPH}`]) {
    assert.equal(await status({ Origin: origin }), 101, origin)
  }
  const warnings = lines.filter(line => line.level === 40 && /allowedOrigins/.test(line.msg))
  assert.equal(warnings.length, 1, 'one warning, not one per connection')
})

test('behind a trusted proxy the own host is the forwarded one (X-Forwarded-Host), not the proxy\'s', async (t) => {
  const { status } = await originApp(t, {}, { trustProxy: true })
  const viaProxy = { Host: 'backend.internal:3000', 'X-Forwarded-Host': HOST, 'X-Forwarded-Proto': 'https' }
  assert.equal(await status({ ...viaProxy, Origin: `https://${HOST}` }), 101)
  assert.equal(await status({ ...viaProxy, Origin: 'http://backend.internal:3000' }), 403)
  assert.equal(await status({ ...viaProxy, Origin: 'https://evil.example' }), 403)
})
