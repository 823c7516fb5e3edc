import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { once } from 'node:events'
import { test } from 'node:test'
import { chromium, type Browser } from 'playwright-core'

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const missing = existsSync(executablePath) ? undefined : `no Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)`

/** Starts the chat example on a free port and resolves its URL from what it prints. */
async function startChatExample (t: { after (fn: () => unknown): void }): Promise<string> {
  const server = spawn(process.execPath, ['examples/chat/server.js'], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.after(async () => {
    if (server.exitCode === null) {
      server.kill('SIGTERM')
      await once(server, 'exit')
    }
  })
  let output = ''
  for await (const chunk of server.stdout) {
    output += String(chunk)
    const url = /open (http:\/\/\S+)\/ in a browser/.exec(output)?.[1]
    if (url !== undefined) return url
  }
  throw new Error(`the chat example printed no URL: ${output}`)
}

test('in a real browser, the chat page connects, gets its echo, and another page gets the broadcast', async (t) => {
  if (missing !== undefined) {
    if (process.env.CI !== undefined) assert.fail(missing)
    t.skip(missing)
    return
  }
  const url = await startChatExample(t)
  const browser: Browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync']
  })
  t.after(() => browser.close())
  const alice = await browser.newPage()
  const bob = await browser.newPage()
  await alice.goto(`${url}/`)
  await bob.goto(`${url}/`)
  await alice.waitForSelector('#status:has-text("connected as")')
  await bob.waitForSelector('#status:has-text("connected as")')
  await alice.waitForSelector('#log p:has-text("handshake: ws连接成功")')

  await alice.fill('#text', 'hello from alice')
  await alice.click('#send')
  await alice.waitForSelector('#log p.echo:has-text("服务器已经收到了你的消息：hello from alice")')
  const aliceName = (await alice.textContent('#status'))?.replace('connected as ', '')
  await bob.waitForSelector(`#log p:has-text("${aliceName ?? ''}: hello from alice")`)

  await alice.close()
  await bob.waitForSelector(`#log p.system:has-text("${aliceName ?? ''} left (1 online)")`)
})
