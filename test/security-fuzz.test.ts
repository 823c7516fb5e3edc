import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { createApp, waitFor } from './helpers.js'
import { openClient } from './churn.js'
import { closeFrame, frame, prng, RawClient, textFrame } from './raw-client.js'
import { since } from './probes.js'

const SEED = 0x5eed
const FRAMES = 2000
const CONNECTIONS = 8
const MAX_PAYLOAD = 4096

test(`fuzz: ${FRAMES} seeded random frames and JSON bodies over ${CONNECTIONS} connections: no crash, no unhandled rejection, the server still serves`, async (t) => {
  let unhandled = 0
  let uncaught = 0
  const onUnhandled = (): void => { unhandled++ }
  const onUncaught = (): void => { uncaught++ }
  process.on('unhandledRejection', onUnhandled)
  process.on('uncaughtException', onUncaught)
  t.after(() => {
    process.off('unhandledRejection', onUnhandled)
    process.off('uncaughtException', onUncaught)
  })

  const app = await createApp(t, { maxPayload: MAX_PAYLOAD, heartbeat: { interval: 200 } })
  const errorsPerClient = new Map<string, number>()
  // A small chat protocol, written the way applications are: it trusts JSON.parse to throw.
  app.hub.route({
    url: '/ws',
    async onMessage (client, data, isBinary) {
      if (isBinary) {
        client.send(data)
        return
      }
      const message = JSON.parse(data as string)
      switch (message.type) {
        case 'join': client.join(String(message.room)); break
        case 'leave': client.leave(String(message.room)); break
        case 'say': client.hub.broadcast({ from: client.id, text: message.text }, { room: String(message.room), except: client }); break
        case 'echo': client.send(message); break
        case 'later': await new Promise(resolve => setTimeout(resolve, 1)); client.send('later'); break
        default: throw new Error(`unknown type ${String(message.type)}`)
      }
    },
    onError (client) { errorsPerClient.set(client.id, (errorsPerClient.get(client.id) ?? 0) + 1) }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo

  const random = prng(SEED)
  const int = (below: number): number => Math.floor(random() * below)
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T
  const bytes = (length: number): Buffer => Buffer.from(Array.from({ length }, () => int(256)))
  const text = (length: number): string => String.fromCodePoint(...Array.from({ length }, () => pick([int(0x7f - 0x20) + 0x20, int(0x800), int(0xd7ff), 0x1f600 + int(80)])))
  function body (): string {
    const shape = { type: pick(['join', 'leave', 'say', 'echo', 'later', 'bogus', 42, null]), room: pick(['a', 'b', text(int(12)), int(100)]), text: text(int(40)) }
    if (random() < 0.2) return JSON.stringify([shape, shape])
    return JSON.stringify(shape)
  }
  const kinds: Record<string, () => Buffer> = {
    json: () => textFrame(body()),
    badJson: () => textFrame(text(1 + int(60))),
    binary: () => frame({ opcode: 2, payload: bytes(int(300)) }),
    fragmented: () => {
      const payload = Buffer.from(body())
      const cut = 1 + int(Math.max(1, payload.length - 1))
      return Buffer.concat([textFrame(payload.subarray(0, cut), false), frame({ opcode: 0, payload: payload.subarray(cut) })])
    },
    ping: () => frame({ opcode: 9, payload: bytes(random() < 0.8 ? int(126) : 126 + int(60)) }),
    pong: () => frame({ opcode: 10, payload: bytes(int(126)) }),
    close: () => random() < 0.5 ? closeFrame(pick([1000, 1001, 1005, 1006, 1015, 999, 2000, 3000, 4999, 5000])) : frame({ opcode: 8, payload: bytes(int(5)) }),
    badHeader: () => frame({ opcode: int(16), payload: bytes(int(40)), rsv: int(8), mask: random() < 0.7, fin: random() < 0.7 }),
    oversized: () => frame({ opcode: pick([1, 2]), payload: Buffer.alloc(MAX_PAYLOAD + 1 + int(2000), 0x61) }),
    badUtf8: () => textFrame(Buffer.concat([Buffer.from('{"type":"'), pick([Buffer.from([0xff]), Buffer.from([0xc3]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf4, 0x90, 0x80, 0x80])]), Buffer.from('"}')])),
    garbage: () => bytes(1 + int(64))
  }
  const weights: Array<[string, number]> = [['json', 30], ['badJson', 10], ['binary', 10], ['fragmented', 10], ['ping', 5], ['pong', 3], ['close', 5], ['badHeader', 10], ['oversized', 5], ['badUtf8', 5], ['garbage', 7]]
  const totalWeight = weights.reduce((sum, [, weight]) => sum + weight, 0)
  function kind (): string {
    let roll = int(totalWeight)
    for (const [name, weight] of weights) {
      if ((roll -= weight) < 0) return name
    }
    return 'json'
  }

  const connections: Array<RawClient | undefined> = Array.from({ length: CONNECTIONS }, () => undefined)
  const all: RawClient[] = []
  t.after(() => { for (const client of all) client.destroy() })
  const sent: Record<string, number> = {}
  const closeCodes: Record<number, number> = {}
  const start = performance.now()
  for (let i = 0; i < FRAMES; i++) {
    const slot = int(CONNECTIONS)
    let client = connections[slot]
    if (client === undefined || client.socket.destroyed || !client.socket.writable) {
      client = await RawClient.upgrade(port)
      all.push(client)
      client.closed.then(close => { closeCodes[close.code] = (closeCodes[close.code] ?? 0) + 1 }, () => {})
      connections[slot] = client
    }
    const name = kind()
    sent[name] = (sent[name] ?? 0) + 1
    client.write(kinds[name]?.() ?? Buffer.alloc(0))
    if (i % 4 === 0) await new Promise(resolve => setImmediate(resolve))
  }
  for (const client of all) client.destroy()
  await waitFor(() => app.hub.onlineCount() === 0 && app.hub.stats().rooms === 0, 5000, 'the fuzzed clients to leave')
  const elapsed = since(start)

  const fresh = await openClient(`ws://127.0.0.1:${port}/ws`)
  const echo = new Promise<string>(resolve => fresh.once('message', data => resolve(data.toString())))
  fresh.send(JSON.stringify({ type: 'echo', n: 1 }))
  assert.deepEqual(JSON.parse(await echo), { type: 'echo', n: 1 })
  fresh.close()

  assert.equal(unhandled, 0, 'no unhandled rejection')
  assert.equal(uncaught, 0, 'no uncaught exception')
  assert.ok([...errorsPerClient.values()].every(count => count === 1), 'onError at most once per client')
  const stats = app.hub.stats()
  t.diagnostic(`${FRAMES} frames in ${elapsed} ms over ${all.length} connections (seed ${SEED}); sent ${JSON.stringify(sent)}; ` +
    `close codes seen ${JSON.stringify(closeCodes)}; handler errors ${stats.handlerErrors}, onError calls ${[...errorsPerClient.values()].reduce((a, b) => a + b, 0)}`)
})
