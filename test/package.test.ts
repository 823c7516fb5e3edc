import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

let packed: string[] | undefined

/** The files `npm publish` would put in the tarball, as npm itself lists them (asked once). */
function packedFiles (): string[] {
  if (packed === undefined) {
    const output = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' })
    const [pack] = JSON.parse(output) as Array<{ files: Array<{ path: string }> }>
    packed = (pack?.files ?? []).map(file => file.path)
  }
  return packed
}

/** `ws`, `@fastify/error` and `node:stream` from an import specifier (a subpath dropped). */
function packageOf (specifier: string): string {
  const parts = specifier.split('/')
  return (specifier.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/')
}

test('require() of the package and of ./redis works (require of ESM, Node ^20.19 or >= 22.12)', () => {
  const output = execFileSync(process.execPath, ['-e', `
    const hub = require('fastify-ws-hub')
    const redis = require('fastify-ws-hub/redis')
    console.log(JSON.stringify([typeof hub.default, hub.default === hub.fastifyWsHub, typeof hub.Type.Object, typeof redis.redisAdapter]))
  `], { encoding: 'utf8' })
  assert.deepEqual(JSON.parse(output), ['function', true, 'function', 'function'])
})

test('the manifest publishes dist and the sources its maps point to, as ESM, with the three entry points and the pinned ws', () => {
  assert.equal(manifest.name, 'fastify-ws-hub')
  assert.equal(manifest.type, 'module')
  assert.deepEqual(manifest.files, ['dist', 'lib'])
  // require() of an ES module works without a flag from Node 20.19 and from 22.12: 22.0 to 22.11 are left out.
  assert.equal(manifest.engines.node, '^20.19 || >=22.12')
  assert.deepEqual(Object.keys(manifest.exports).filter((key: string) => key !== './package.json'), ['.', './redis', './client'])
  assert.match(manifest.dependencies.ws, /^\^?8\.(2[3-9]|[3-9]\d)\./)
  assert.ok(manifest.peerDependencies.fastify)
  assert.equal(manifest.peerDependenciesMeta.ioredis.optional, true)
})

test('./client loads nothing but its own files: no dependency, no server code', async () => {
  const directory = join(root, 'dist', 'client')
  const { createClient, HubClientError } = await import('fastify-ws-hub/client')
  assert.equal(typeof createClient, 'function')
  assert.equal(typeof HubClientError, 'function')
  const files = packedFiles().filter(file => file.startsWith('dist/client/') && file.endsWith('.js'))
  assert.ok(files.includes('dist/client/index.js'))
  for (const file of files) {
    const text = readFileSync(join(root, file), 'utf8')
    for (const match of text.matchAll(/(?:from\s+|import\(\s*|import\s+)["']([^"']+)["']/g)) {
      assert.match(match[1] as string, /^\.\/[\w-]+\.js$/, `${file} imports ${match[1]}`)
      assert.ok(existsSync(join(directory, match[1] as string)))
    }
  }
})

test('the plugin is wrapped by fastify-plugin with the npm name and fastify 5', async () => {
  const { default: plugin } = await import('../dist/index.js')
  const meta = (plugin as unknown as Record<symbol, { name: string, fastify: string } | undefined>)[Symbol.for('plugin-meta')]
  assert.equal(meta?.name, 'fastify-ws-hub')
  assert.equal(meta?.fastify, '5.x')
})

test('the tarball holds the LICENSE', () => {
  assert.ok(packedFiles().includes('LICENSE'))
})

test('every source a shipped source map names is shipped too', () => {
  const files = packedFiles()
  const shipped = new Set(files)
  const maps = files.filter(file => file.endsWith('.map'))
  let sources = 0
  for (const map of maps) {
    const { sources: named } = JSON.parse(readFileSync(join(root, map), 'utf8')) as { sources: string[] }
    for (const source of named) {
      sources++
      const target = normalize(join(dirname(map), source))
      assert.ok(shipped.has(target), `${map} names ${source} (${target}), which is not in the tarball`)
    }
  }
  assert.ok(maps.length === 0 || sources > 0)
})

test('the published .d.ts files import only packages a user gets installed, with their types', () => {
  const files = packedFiles().filter(file => file.endsWith('.d.ts'))
  assert.ok(files.length > 0)
  const installed = { ...manifest.dependencies, ...manifest.peerDependencies }
  const imported = new Set<string>()
  for (const file of files) {
    const text = readFileSync(join(root, file), 'utf8')
    for (const match of text.matchAll(/(?:from\s+|import\(\s*|reference types=)["']([^"'.][^"']*)["']/g)) {
      imported.add(packageOf(match[1] as string))
    }
  }
  assert.ok(imported.has('ws'), [...imported].join(', '))
  for (const name of imported) {
    // Node's own modules are typed by the user's @types/node, as for Fastify's own types.
    if (name.startsWith('node:')) continue
    assert.ok(name in installed, `${name} is imported by the types but is not a dependency or peer`)
    // Read from node_modules: a package's exports may not expose its package.json.
    const directory = join(root, 'node_modules', name)
    const own = JSON.parse(readFileSync(join(directory, 'package.json'), 'utf8')) as { types?: string, typings?: string }
    const typed = own.types !== undefined || own.typings !== undefined || existsSync(join(directory, 'index.d.ts'))
    if (!typed) {
      const types = `@types/${name.replace(/^@/, '').replace('/', '__')}`
      assert.ok(types in manifest.dependencies, `${name} has no types of its own: ${types} must be a dependency`)
    }
  }
})

test('the lockfile\'s root entry has the manifest\'s dependency ranges (npm install leaves it unchanged)', () => {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'))
  const entry = lock.packages['']
  for (const field of ['dependencies', 'devDependencies', 'peerDependencies', 'peerDependenciesMeta', 'optionalDependencies', 'engines']) {
    assert.deepEqual(entry[field], manifest[field], field)
  }
  assert.equal(entry.version, manifest.version)
  assert.equal(entry.license, manifest.license)
})
