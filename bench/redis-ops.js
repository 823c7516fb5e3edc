// What the Redis operations of the adapter cost Redis itself, for the sizing model in
// docs/cluster.md: SUBSCRIBE and UNSUBSCRIBE of a client's or room's channel (a connect and a
// disconnect), and PUBLISH of a 250-byte envelope to a channel with one subscriber, pipelined as
// a node's publishes of one turn are. Redis CPU is read from INFO cpu before and after each phase;
// memory per subscription from INFO memory.
//
//   node bench/redis-ops.js [--channels N]
//
// Needs a Redis at REDIS_URL (default redis://127.0.0.1:6379), ideally with nothing else on it.
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { redisCpuUs } from './redis-admin.js'

const { values: args } = parseArgs({ options: { channels: { type: 'string' } } })
const count = Number(args.channels ?? 100_000)
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const BATCH = 1000

const admin = new Redis(url)
const subscriber = new Redis(url)
const publisher = new Redis(url)

async function usedMemory () {
  return Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1])
}

/** Runs `phase` and returns Redis's CPU per operation, µs. */
async function measure (phase) {
  const before = await redisCpuUs(admin)
  await phase()
  return ((await redisCpuUs(admin)) - before) / count
}

const channels = Array.from({ length: count }, (_, i) => `fwh-bench-redis-ops:${process.pid}:client:{${i}}`)
const memoryBefore = await usedMemory()
const subscribe = await measure(async () => {
  for (let i = 0; i < count; i += BATCH) await Promise.all(channels.slice(i, i + BATCH).map(channel => subscriber.subscribe(channel)))
})
const perSubscription = ((await usedMemory()) - memoryBefore) / count
let received = 0
subscriber.on('messageBuffer', () => { received++ })
const payload = Buffer.alloc(250, 0x78)
const publish = await measure(async () => {
  for (let i = 0; i < count; i += BATCH) {
    const pipeline = publisher.pipeline()
    for (const channel of channels.slice(i, i + BATCH)) pipeline.publish(channel, payload)
    await pipeline.exec()
  }
  // Until the subscriber has them all: Redis has then written every one of them.
  await new Promise(resolve => {
    const check = () => (received >= count ? resolve() : setTimeout(check, 10))
    check()
  })
})
const unsubscribe = await measure(async () => {
  for (let i = 0; i < count; i += BATCH) await Promise.all(channels.slice(i, i + BATCH).map(channel => subscriber.unsubscribe(channel)))
})

console.log(`Redis CPU per operation over ${count} channels (µs): SUBSCRIBE ${subscribe.toFixed(2)}, PUBLISH 250 B to 1 subscriber (pipelined by ${BATCH}) ${publish.toFixed(2)}, UNSUBSCRIBE ${unsubscribe.toFixed(2)}; memory per subscribed channel ${perSubscription.toFixed(0)} bytes`)
console.log(JSON.stringify({ bench: 'redis-ops', channels: count, subscribeUs: subscribe, publishUs: publish, unsubscribeUs: unsubscribe, bytesPerSubscription: perSubscription }))
admin.disconnect()
subscriber.disconnect()
publisher.disconnect()
