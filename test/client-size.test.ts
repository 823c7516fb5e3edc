import assert from 'node:assert/strict'
import { test } from 'node:test'
import { measure } from '../scripts/client-size.ts'

test('the client bundled, minified and gzipped stays under its 4 KB budget', async () => {
  const { gzipped } = await measure('./dist/client/index.js')
  assert.ok(gzipped < 4096, `${gzipped} bytes gzipped`)
})
