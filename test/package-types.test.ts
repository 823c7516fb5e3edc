import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { test } from 'node:test'
import { promisify } from 'node:util'

const run = promisify(execFile)
const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url))

for (const resolution of ['nodenext', 'bundler']) {
  test(`the shipped declarations type-check in an application with moduleResolution ${resolution} and skipLibCheck off`, async () => {
    const project = fileURLToPath(new URL(`fixtures/consumer/tsconfig.${resolution}.json`, import.meta.url))
    const result = await run(process.execPath, [tsc, '-p', project], { timeout: 60_000 }).then(
      () => '',
      (error: { stdout?: string }) => error.stdout ?? String(error))
    assert.equal(result, '', 'tsc reported errors')
  })
}
