import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { test } from 'node:test'
import { promisify } from 'node:util'

const run = promisify(execFile)
const typescript = (process.features as { typescript?: string | false }).typescript
const skip = typeof typescript === 'string' && 'WebSocket' in globalThis
  ? false
  : `Node ${process.version} does not strip types by default (Node 22.18 and 23.6 on do)`

test('lib/ runs as TypeScript source under Node\'s own type stripping: no enums, namespaces or parameter properties, imports by their .ts names', { skip }, async () => {
  const app = fileURLToPath(new URL('fixtures/strip-types-app.mjs', import.meta.url))
  // A fresh process without tsx: Node itself loads lib/*.ts.
  const { stdout } = await run(process.execPath, ['--disable-warning=ExperimentalWarning', app], { timeout: 30_000 })
  const result = JSON.parse(stdout) as { received: unknown[], typescript: string }
  assert.equal(result.typescript, typescript)
  assert.deepEqual(result.received[1], { type: 'add', id: 7, data: 5 })
  assert.match(JSON.stringify(result.received[0]), /2000/, 'the handshake message came first')
})
