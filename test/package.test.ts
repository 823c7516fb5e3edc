import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'

const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))

test('require() of the package and of ./redis works (require of ESM, Node >= 20.19)', () => {
  const output = execFileSync(process.execPath, ['-e', `
    const hub = require('fastify-ws-hub')
    const redis = require('fastify-ws-hub/redis')
    console.log(JSON.stringify([typeof hub.default, hub.default === hub.fastifyWsHub, typeof hub.Type.Object, typeof redis.redisAdapter]))
  `], { encoding: 'utf8' })
  assert.deepEqual(JSON.parse(output), ['function', true, 'function', 'function'])
})

test('the manifest publishes dist only, as ESM, with the two entry points and the pinned ws', () => {
  assert.equal(manifest.name, 'fastify-ws-hub')
  assert.equal(manifest.type, 'module')
  assert.deepEqual(manifest.files, ['dist'])
  assert.equal(manifest.engines.node, '>=20.19')
  assert.deepEqual(Object.keys(manifest.exports).filter((key: string) => key !== './package.json'), ['.', './redis'])
  assert.match(manifest.dependencies.ws, /^\^?8\.(2[3-9]|[3-9]\d)\./)
  assert.ok(manifest.peerDependencies.fastify)
  assert.equal(manifest.peerDependenciesMeta.ioredis.optional, true)
})

test('the plugin is wrapped by fastify-plugin with the npm name and fastify 5', async () => {
  const { default: plugin } = await import('../dist/index.js')
  const meta = (plugin as unknown as Record<symbol, { name: string, fastify: string } | undefined>)[Symbol.for('plugin-meta')]
  assert.equal(meta?.name, 'fastify-ws-hub')
  assert.equal(meta?.fastify, '5.x')
})
