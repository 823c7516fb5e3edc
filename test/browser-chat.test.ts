// The chat demo (examples/chat) in a real browser: Debian's Chromium driven by playwright-core, the
// page using the client library served from dist/client/. Every wait is on something the page
// shows, with a timeout: no sleeps.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { once } from 'node:events'
import { test, type TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { chromium, type Browser, type Page } from 'playwright-core'
import type { Client } from '../dist/index.js'
import { uniquePrefix, useRedis } from './redis-env.js'

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const missing = existsSync(executablePath) ? undefined : `no Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)`
const WAIT = 10_000

interface ChatOptions { redisUrl?: string, prefix?: string, recountDelay?: number }
// plain JavaScript without declarations: imported through a computed specifier, typed here
const chatModule = new URL('../examples/chat/app.js', import.meta.url).href
const { buildChat } = await import(chatModule) as { buildChat: (options?: ChatOptions) => Promise<FastifyInstance> }

/** Skips the test when there is no Chromium (fails instead under CI, which installs it). */
function chromiumMissing (t: TestContext): boolean {
  if (missing === undefined) return false
  if (process.env.CI !== undefined && process.env.CI !== '') assert.fail(missing)
  t.skip(missing)
  return true
}

async function launch (t: TestContext): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync']
  })
  t.after(() => browser.close())
  return browser
}

/** A chat server of the test's own on a free port. */
async function startChat (t: TestContext, options: ChatOptions = {}): Promise<{ app: FastifyInstance, url: string }> {
  const app = await buildChat(options)
  t.after(() => app.close())
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url }
}

/**
 * Opens the chat as `name` in the given rooms, in a browser context of its own (a separate
 * profile: another person on another machine), and waits until it is connected.
 */
async function openChat (browser: Browser, url: string, name: string, rooms: string[]): Promise<Page> {
  const page = await (await browser.newContext()).newPage()
  page.setDefaultTimeout(WAIT)
  const query = new URLSearchParams([['name', name], ...rooms.map((room): [string, string] => ['room', room])])
  await page.goto(`${url}/?${query}`)
  await page.locator('#status[data-status="open"]').waitFor()
  return page
}

/**
 * Waits until a room's log on a page has a line of this kind (`said`, `system`...) with this text;
 * the log of a room that is not on screen is in the page too, hidden: attached is enough.
 */
async function waitForLine (page: Page, room: string, kind: string, text: string): Promise<void> {
  await page.locator(`.log[data-room="${room}"] li.${kind}`, { hasText: text }).first().waitFor({ state: 'attached' })
}

async function say (page: Page, text: string): Promise<void> {
  await page.fill('#text', text)
  await page.click('#send')
}

/** Waits until the page shows this online count for a room in its room list. */
async function waitForCount (page: Page, room: string, count: number): Promise<void> {
  await page.locator(`#rooms li[data-room="${room}"] .count`).filter({ hasText: new RegExp(`^${count}$`) }).waitFor()
}

/** The server-side client of the page whose nickname is `name`. */
function clientNamed (app: FastifyInstance, name: string): Client | undefined {
  return [...app.hub.clients.values()].find(client => (client.params as { name?: string }).name === name)
}

test('two pages in a room talk, a page in another room hears none of it, and the online count follows joins and leaves', async (t) => {
  if (chromiumMissing(t)) return
  const browser = await launch(t)
  const { url } = await startChat(t)

  const alice = await openChat(browser, url, 'alice', ['team-a'])
  await waitForCount(alice, 'team-a', 1)
  await alice.locator('#online', { hasText: '1 online' }).waitFor()
  const bob = await openChat(browser, url, 'bob', ['team-a'])
  await waitForCount(alice, 'team-a', 2)
  await waitForCount(bob, 'team-a', 2)
  await waitForLine(alice, 'team-a', 'system', 'bob joined the room')
  const carol = await openChat(browser, url, 'carol', ['team-b'])
  await waitForCount(carol, 'team-b', 1)

  await say(alice, 'hello bob')
  await waitForLine(bob, 'team-a', 'said', 'alicehello bob')
  // the speaker's own line comes back from the server, marked as its own
  await waitForLine(alice, 'team-a', 'said.mine', 'hello bob')
  await say(bob, 'hi alice')
  await waitForLine(alice, 'team-a', 'said', 'bobhi alice')

  // alice joins carol's room from the form and says something there: it reaches carol after
  // everything alice said before it (one socket, one server: in order), so what carol has by then
  // is all she will ever get of team-a: nothing
  await alice.fill('#join-room', 'team-b')
  await alice.click('#join-form button')
  await waitForCount(alice, 'team-b', 2)
  await alice.locator('#room-name', { hasText: '#team-b' }).waitFor()
  await say(alice, 'hello carol')
  await waitForLine(carol, 'team-b', 'said', 'alicehello carol')
  await waitForCount(carol, 'team-b', 2)
  assert.equal(await carol.locator('li.said', { hasText: 'hello bob' }).count(), 0)
  assert.equal(await carol.locator('li.said', { hasText: 'hi alice' }).count(), 0)
  assert.equal(await carol.locator('.log[data-room="team-a"]').count(), 0)
  // team-a's line on alice's page, not on screen, counts as unread
  await say(bob, 'are you there?')
  await alice.locator('#rooms li[data-room="team-a"] .unread', { hasText: '1' }).waitFor()

  // bob leaves team-a with its × button: alice is told, and the count drops
  await bob.click('#rooms li[data-room="team-a"] .leave')
  await waitForLine(alice, 'team-a', 'system', 'bob left the room')
  await waitForCount(alice, 'team-a', 1)
  assert.equal(await bob.locator('#rooms li[data-room="team-a"]').count(), 0)
  // carol closes her tab: her socket closes, and team-b counts one again
  await carol.close()
  await waitForLine(alice, 'team-b', 'system', 'carol left the room')
  await waitForCount(alice, 'team-b', 1)
})

test('when the server terminates a page\'s socket, the page shows it, reconnects by itself, rejoins its room and goes on; closed with 4001 it stays away', async (t) => {
  if (chromiumMissing(t)) return
  const browser = await launch(t)
  const { app, url } = await startChat(t)
  const alice = await openChat(browser, url, 'alice', ['lobby'])
  const bob = await openChat(browser, url, 'bob', ['lobby'])
  await waitForCount(alice, 'lobby', 2)
  await say(alice, 'before')
  await waitForLine(bob, 'lobby', 'said', 'alicebefore')

  const first = clientNamed(app, 'alice')
  assert.ok(first !== undefined)
  // no close frame: to the page this is a lost connection, not a goodbye
  first.socket.terminate()
  await waitForLine(alice, 'lobby', 'system', 'connection lost, reconnecting…')
  await waitForLine(bob, 'lobby', 'system', 'alice left the room')
  // a new socket, so a new client on the server, and the page joins its room again on it
  await alice.locator('#status[data-status="open"]').waitFor()
  await waitForLine(bob, 'lobby', 'system', 'alice joined the room')
  const second = clientNamed(app, 'alice')
  assert.ok(second !== undefined && second !== first)
  await waitForCount(bob, 'lobby', 2)
  await waitForCount(alice, 'lobby', 2)

  await say(alice, 'after the reconnect')
  await waitForLine(bob, 'lobby', 'said', 'aliceafter the reconnect')
  await say(bob, 'welcome back')
  await waitForLine(alice, 'lobby', 'said', 'bobwelcome back')

  // a close code that says not to come back (4000-4099): the page stays away and says so
  clientNamed(app, 'bob')?.close(4001, 'kicked')
  await bob.locator('#status[data-status="closed"]').waitFor()
  await waitForLine(bob, 'lobby', 'system', 'disconnected: reload the page to come back')
  await waitForCount(alice, 'lobby', 1)
})

test('while the server is down the page shows it and keeps what is typed; restarted, the page comes back and sends it', async (t) => {
  if (chromiumMissing(t)) return
  const browser = await launch(t)
  const first = await buildChat()
  const url = await first.listen({ port: 0, host: '127.0.0.1' })
  const alice = await openChat(browser, url, 'alice', ['lobby'])
  await waitForCount(alice, 'lobby', 1)

  // the hub closes its clients with 1001 (going away): a close to come back from
  await first.close()
  await alice.locator('#status[data-status="reconnecting"]', { hasText: 'reconnecting' }).waitFor()
  await say(alice, 'typed while away')
  const { port } = new URL(url)
  const second = await buildChat()
  t.after(() => second.close())
  await second.listen({ port: Number(port), host: '127.0.0.1' })

  // The page's next attempt comes within its backoff cap (5 s, full jitter), plus slack for a loaded machine.
  await alice.locator('#status[data-status="open"]').waitFor({ timeout: 20_000 })
  // the line comes back from the new server: the buffered say reached it, in the room
  await waitForLine(alice, 'lobby', 'said.mine', 'typed while away')
  await waitForCount(alice, 'lobby', 1)
  const bob = await openChat(browser, url, 'bob', ['lobby'])
  await waitForCount(alice, 'lobby', 2)
  await say(bob, 'hello again')
  await waitForLine(alice, 'lobby', 'said', 'bobhello again')
})

test('two chat servers on one Redis are one chat: a page on each shares a room, its messages and its online count', async (t) => {
  if (chromiumMissing(t)) return
  const redisUrl = await useRedis(t)
  if (redisUrl === undefined) return
  const browser = await launch(t)
  const prefix = uniquePrefix()
  const one = await startChat(t, { redisUrl, prefix, recountDelay: 400 })
  const two = await startChat(t, { redisUrl, prefix, recountDelay: 400 })

  const alice = await openChat(browser, one.url, 'alice', ['lobby'])
  const bob = await openChat(browser, two.url, 'bob', ['lobby'])
  // each node counts the other's members from its Redis lease, which lags a little: counted again after
  await waitForCount(alice, 'lobby', 2)
  await waitForCount(bob, 'lobby', 2)
  await waitForLine(alice, 'lobby', 'system', 'bob joined the room')

  await say(alice, 'from server one')
  await waitForLine(bob, 'lobby', 'said', 'alicefrom server one')
  await say(bob, 'from server two')
  await waitForLine(alice, 'lobby', 'said', 'bobfrom server two')

  await bob.close()
  await waitForLine(alice, 'lobby', 'system', 'bob left the room')
  await waitForCount(alice, 'lobby', 1)
})

/** Waits until the page lists exactly these members (by name, sorted) for the room on screen. */
async function waitForMembers (page: Page, names: string[]): Promise<void> {
  // a string, evaluated in the page: the test's own TypeScript has no DOM types
  const expected = JSON.stringify(JSON.stringify([...names].sort()))
  await page.waitForFunction(`JSON.stringify([...document.querySelectorAll('#members li')].map(item => item.textContent)) === ${expected}`)
}

test('the member list shows who is in the room, from hub.presence on join, kept live by $join and $leave; two servers on Redis', async (t) => {
  if (chromiumMissing(t)) return
  const redisUrl = await useRedis(t)
  if (redisUrl === undefined) return
  const browser = await launch(t)
  const prefix = uniquePrefix()
  const one = await startChat(t, { redisUrl, prefix })
  const two = await startChat(t, { redisUrl, prefix })

  const alice = await openChat(browser, one.url, 'alice', ['lobby'])
  await waitForMembers(alice, ['alice'])
  const bob = await openChat(browser, two.url, 'bob', ['lobby'])
  // bob's list comes from hub.presence (alice is on the other server); alice's from bob's $join
  await waitForMembers(bob, ['alice', 'bob'])
  await waitForMembers(alice, ['alice', 'bob'])
  const carol = await openChat(browser, one.url, 'carol', ['lobby'])
  await waitForMembers(carol, ['alice', 'bob', 'carol'])
  await waitForMembers(bob, ['alice', 'bob', 'carol'])

  // bob leaves the room with its × button, carol closes her page: both leave every list
  await bob.click('#rooms li[data-room="lobby"] .leave')
  await waitForMembers(alice, ['alice', 'carol'])
  await waitForMembers(carol, ['alice', 'carol'])
  await carol.close()
  await waitForMembers(alice, ['alice'])
  assert.deepEqual((await one.app.hub.presence('lobby')).map(member => member.params), [{ name: 'alice' }])
})

test('npm start\'s server prints its URL and serves the page, its script and the client module', async (t) => {
  const server = spawn(process.execPath, ['examples/chat/server.js'], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn', REDIS_URL: '' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.after(async () => {
    if (server.exitCode === null) {
      server.kill('SIGTERM')
      await once(server, 'exit')
    }
  })
  let output = ''
  let url: string | undefined
  for await (const chunk of server.stdout) {
    output += String(chunk)
    url = /open (http:\/\/\S+)\/ in a browser/.exec(output)?.[1]
    if (url !== undefined) break
  }
  assert.ok(url !== undefined, `the chat example printed no URL: ${output}`)
  for (const [path, type] of [['/', 'text/html'], ['/chat.js', 'javascript'], ['/style.css', 'text/css'], ['/client/index.js', 'javascript']] as const) {
    const response = await fetch(`${url}${path}`)
    assert.equal(response.status, 200, path)
    assert.match(response.headers.get('content-type') ?? '', new RegExp(type), path)
  }
})
