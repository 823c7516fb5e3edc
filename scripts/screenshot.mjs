// Writes docs/chat.png, the README's picture of the demo: the chat started on a free port, two
// people (two frames side by side, each its own connection) talking in a room.
// Needs Chromium (/usr/bin/chromium, or CHROMIUM_PATH). Run: npm run screenshot
import { mkdir } from 'node:fs/promises'
import { chromium } from 'playwright-core'
import { buildChat } from '../examples/chat/app.js'

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const output = new URL('../docs/chat.png', import.meta.url)

const app = await buildChat()
const url = await app.listen({ port: 0, host: '127.0.0.1' })
const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run']
})
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 560 }, deviceScaleFactor: 1 })
  page.setDefaultTimeout(10_000)
  const frame = (name) => `<iframe id="${name}" src="${url}/?name=${name}&room=lobby&room=release"></iframe>`
  await page.setContent(`<style>
    body { margin: 0; display: flex; gap: 8px; background: #c9ced8; padding: 8px; box-sizing: border-box; height: 100vh; }
    iframe { flex: 1; border: 0; border-radius: 6px; background: #fff; }
  </style>${frame('alice')}${frame('bob')}`)
  const alice = page.frameLocator('#alice')
  const bob = page.frameLocator('#bob')
  for (const person of [alice, bob]) {
    await person.locator('#status[data-status="open"]').waitFor()
    await person.locator('#rooms li[data-room="release"] .room').click()
  }
  await alice.locator('#online', { hasText: '2 online' }).waitFor()

  const conversation = [
    [alice, 'Morning! Is 2.4 ready to ship?'],
    [bob, 'Almost: the Redis soak test is still running.'],
    [alice, 'Great, ping me when it is green.'],
    [bob, 'Green. Tagging it now.']
  ]
  for (const [index, [person, text]] of conversation.entries()) {
    await person.locator('#text').fill(text)
    await person.locator('#send').click()
    // both sides show the line before the next one is typed, so the picture is the same each time
    for (const side of [alice, bob]) await side.locator('.log[data-room="release"] li.said').nth(index).waitFor()
  }
  await bob.locator('#text').fill('Nice work, everyone')

  await mkdir(new URL('.', output), { recursive: true })
  await page.screenshot({ path: output.pathname })
  console.log(`wrote ${output.pathname}`)
} finally {
  await browser.close()
  await app.close()
}
