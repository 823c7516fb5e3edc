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

test('in a real browser, the typed chat sends messages, gets events from another browser, replies and error frames', async (t) => {
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
  // two contexts: two separate browser profiles, as two people on two machines
  const alice = await (await browser.newContext()).newPage()
  const bob = await (await browser.newContext()).newPage()
  await alice.goto(`${url}/`)
  await alice.waitForSelector('#status:has-text("connected as")')
  await bob.goto(`${url}/`)
  await bob.waitForSelector('#status:has-text("connected as")')
  await alice.waitForSelector('#log p:has-text("handshake: ws连接成功")')
  const aliceName = (await alice.textContent('#status'))?.replace('connected as ', '') ?? ''
  const bobName = (await bob.textContent('#status'))?.replace('connected as ', '') ?? ''
  await alice.waitForSelector(`#log p.system:has-text("${bobName} joined #lobby (2 online)")`)

  // a `say` with id 1: its reply comes back to alice, its `said` event reaches bob
  await alice.fill('#text', 'hello from alice')
  await alice.click('#send')
  await alice.waitForSelector('#log p.echo:has-text("#1 服务器已经收到了你的消息：hello from alice")')
  await bob.waitForSelector(`#log p:has-text("${aliceName}: hello from alice")`)

  // a `join` with id 2 answered by its reply; bob joining afterwards reaches alice as a `joined` event
  await alice.fill('#text', '/join team-a')
  await alice.click('#send')
  await alice.waitForSelector('#log p.system:has-text("#2 you are in #team-a (1 here)")')
  assert.equal(await alice.textContent('#room'), 'team-a')
  await bob.fill('#text', '/join team-a')
  await bob.click('#send')
  await bob.waitForSelector('#log p.system:has-text("you are in #team-a (2 here)")')
  await alice.waitForSelector(`#log p.system:has-text("${bobName} joined #team-a (2 online)")`)

  // a room name the schema refuses: an error frame carrying the request's id, and the room is kept
  await alice.fill('#text', '/join Not A Room!')
  await alice.click('#send')
  await alice.waitForSelector('#log p.error:has-text("error #3 invalid_data: data/room")')
  assert.equal(await alice.textContent('#room'), 'team-a')
  // a type the route does not declare, sent without an id: an error frame without one
  // (a string, evaluated in the page, where the page script's `const socket` is in scope)
  await alice.evaluate('socket.send(\'{"type":"shout","data":{}}\')')
  const unknown = await alice.waitForSelector('#log p.error:has-text("error unknown_type")')
  assert.equal(await unknown.textContent(), 'error unknown_type: no message type "shout" on this route')

  // the connection survived both: alice still talks to bob
  await alice.fill('#text', 'still here')
  await alice.click('#send')
  await bob.waitForSelector(`#log p:has-text("${aliceName}: still here")`)

  await alice.close()
  await bob.waitForSelector(`#log p.system:has-text("${aliceName} left (1 online)")`)
})
