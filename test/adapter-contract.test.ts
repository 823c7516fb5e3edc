import { MemoryBus, memoryAdapter } from '../dist/index.js'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import { adapterContract } from './adapter-contract.js'
import { roomRoutingSuite } from './room-routing.js'
import { uniquePrefix, useRedis } from './redis-env.js'

adapterContract('memory (apps sharing a MemoryBus)', async () => {
  const bus = new MemoryBus()
  return () => memoryAdapter({ bus })
})

adapterContract('redis', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return undefined
  const prefix = uniquePrefix()
  return () => redisAdapter({ url, prefix })
})

roomRoutingSuite('redis', async (t) => {
  const url = await useRedis(t)
  if (url === undefined) return undefined
  const prefix = uniquePrefix()
  return () => redisAdapter({ url, prefix, unsubscribeDelay: 0 })
}, true)
