import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { test } from 'node:test'
import { clusterAvailable, startRedisCluster, type RedisCluster } from './redis-cluster-env.js'
import { eventually, rawClient, uniquePrefix } from './redis-env.js'

const skip = clusterAvailable() ? false : 'a Redis Cluster test needs redis-server and redis-cli on PATH'

/** One name per master, `${prefix}:${n}` for the first n whose slot that master serves, keyed by master port. */
async function namesOnEveryMaster (cluster: RedisCluster, prefix: string): Promise<Map<number, string>> {
  const masters = await cluster.masterPorts()
  const names = new Map<number, string>()
  for (let n = 0; names.size < masters.length; n++) {
    assert.ok(n < 100, `100 names and still not one on every master of ${masters.join(', ')}`)
    const name = `${prefix}:${n}`
    const master = await cluster.masterFor(name)
    if (!names.has(master)) names.set(master, name)
  }
  return names
}

test('a cluster of three masters: keys go to every master and sharded pub/sub works on every shard', { skip }, async (t) => {
  const cluster = await startRedisCluster(t, { masters: 3 })
  assert.equal(cluster.nodes.length, 3)
  const masters = await cluster.masterPorts()
  assert.deepEqual([...masters].sort(), cluster.nodes.map(node => node.port).sort())

  const client = cluster.client()
  const prefix = uniquePrefix()
  const keys = await namesOnEveryMaster(cluster, `${prefix}:key`)
  for (const [master, key] of keys) {
    await client.set(key, `value of ${key}`)
    assert.equal(await client.get(key), `value of ${key}`)
    // Read back from the master itself: a node that does not serve the slot would answer MOVED.
    assert.equal(await rawClient(t, `redis://127.0.0.1:${master}`).get(key), `value of ${key}`)
  }

  const subscriber = cluster.client({ shardedSubscribers: true })
  const publisher = cluster.client()
  const received: Array<[string, string]> = []
  subscriber.on('smessage', (channel: string, message: string) => { received.push([channel, message]) })
  const channels = [...(await namesOnEveryMaster(cluster, `${prefix}:channel`)).values()]
  assert.equal(channels.length, 3)
  for (const channel of channels) await subscriber.ssubscribe(channel)
  for (const channel of channels) {
    // SPUBLISH counts the subscribers on the shard's own node: one, ours.
    assert.equal(await publisher.spublish(channel, `to ${channel}`), 1)
  }
  await eventually(() => received.length === 3, 3000, 'a sharded message on each of the three shards')
  assert.deepEqual(received.sort(), channels.map(channel => [channel, `to ${channel}`]).sort())
})

test('a master is killed: its replica takes over and a sharded subscription gets messages again', { skip }, async (t) => {
  const cluster = await startRedisCluster(t, { masters: 3, replicasPerMaster: 1, nodeTimeout: 1000 })
  assert.equal(cluster.nodes.length, 6)
  assert.equal((await cluster.masterPorts()).length, 3)
  const channel = `${uniquePrefix()}:failover`
  const victim = await cluster.masterFor(channel)

  let killedAt = 0
  /** What the subscribing client emitted, with ms since the kill, to tell how it found its way back. */
  const events: string[] = []
  const subscriber = cluster.client({ shardedSubscribers: true })
  for (const event of ['error', 'node error', '-node', '+node', '-subscriber', '+subscriber', 'subscribersReady']) {
    subscriber.on(event, (arg: unknown) => {
      if (killedAt === 0) return
      const detail = arg instanceof Error ? ` ${arg.message}` : ''
      events.push(`${Math.round(performance.now() - killedAt)} ms ${event}${detail}`)
    })
  }
  const received: string[] = []
  subscriber.on('smessage', (from: string, message: string) => { if (from === channel) received.push(message) })
  const publisher = cluster.client()
  await subscriber.ssubscribe(channel)
  assert.equal(await publisher.spublish(channel, 'before'), 1)
  await eventually(() => received.includes('before'), 3000, 'the message before the kill')

  killedAt = performance.now()
  await cluster.kill(victim)
  // Probes go out one after another from the kill on, alongside the harness's wait for the failover,
  // until one arrives: pub/sub keeps nothing, so those sent before the subscription is back are lost.
  let probes = 0
  const publishErrors = new Map<string, number>()
  const [[promoted, failoverMs], resumedMs] = await Promise.all([
    cluster.waitForFailover(victim).then(port => [port, performance.now() - killedAt] as const),
    eventually(async () => {
      if (received.some(message => message.startsWith('probe'))) return true
      try {
        await publisher.spublish(channel, `probe ${probes++}`)
      } catch (error) {
        const message = (error as Error).message
        publishErrors.set(message, (publishErrors.get(message) ?? 0) + 1)
      }
      return false
    }, 20000, 'a sharded message to arrive after the failover').then(() => performance.now() - killedAt)
  ])
  t.diagnostic(`failover done ${Math.round(failoverMs)} ms after the kill (cluster-node-timeout 1000), sharded delivery resumed after ${Math.round(resumedMs)} ms, ${probes} probes sent`)
  t.diagnostic(`subscriber events: ${events.length === 0 ? 'none' : events.slice(0, 12).join('; ')}${events.length > 12 ? `; ... ${events.length} in all, the last ${events.at(-1)}` : ''}`)
  t.diagnostic(`publish errors: ${publishErrors.size === 0 ? 'none' : [...publishErrors].map(([message, count]) => `${count} x ${message}`).join('; ')}`)

  assert.notEqual(promoted, victim)
  assert.equal(await cluster.masterFor(channel), promoted)
  assert.ok(!(await cluster.masterPorts()).includes(victim))
  // Exactly one subscription on the new master, and messages arrive once each.
  assert.equal(await publisher.spublish(channel, 'after'), 1)
  await eventually(() => received.includes('after'), 3000, 'the message after the failover')
  assert.equal(new Set(received).size, received.length, 'no message arrives twice')
})
