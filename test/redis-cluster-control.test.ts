import { test } from 'node:test'
import { redisAdapter } from '../dist/adapters/redis/index.js'
import { disconnectAcrossNodes, fetchAcrossNodes, joinAndLeaveAcrossNodes, nodeMessagesAcrossNodes } from './control-scenarios.js'
import { clusterAvailable, startRedisCluster } from './redis-cluster-env.js'
import { uniquePrefix } from './redis-env.js'

// One cluster of three masters for every operation: questions and answers go on sharded channels
// (a room's on its room's shard, answers on the asker's node channel's), spread over the masters.
test('cluster-wide control on a Redis Cluster of 3 masters (sharded pub/sub)', async (t) => {
  if (!clusterAvailable()) {
    t.skip('a Redis Cluster test needs redis-server and redis-cli on PATH')
    return
  }
  const cluster = await startRedisCluster(t, { masters: 3 })
  const scenarios = { fetchAcrossNodes, joinAndLeaveAcrossNodes, disconnectAcrossNodes, nodeMessagesAcrossNodes }
  for (const [name, scenario] of Object.entries(scenarios)) {
    await t.test(name, async (t) => {
      const prefix = uniquePrefix()
      await scenario(t, () => redisAdapter({ cluster: cluster.startupNodes, prefix }))
    })
  }
})
