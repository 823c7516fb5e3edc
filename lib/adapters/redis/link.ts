import { Cluster, Redis, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis'
import { within } from './stall.ts'
import { isCluster, type AnyRedis } from './transport.ts'

/** Reconnect backoff cap: once Redis is back, a node is back within about this long. */
const MAX_RECONNECT_DELAY = 1000
/**
 * Ms of silence before TCP keepalive probes start on the adapter's own connections (the OS
 * default is two hours): a peer that vanished without a reset is then found by the kernel even
 * on the subscription, which sends nothing of its own.
 */
const KEEPALIVE_DELAY = 1000

/** Errors that are reported elsewhere (the connection's 'error' event) or that do not matter any more. */
export function ignore (): void {}

/** Short, capped backoff: an outage costs seconds of cross-node traffic, not minutes. */
function reconnectDelay (attempt: number): number {
  return Math.min(attempt * 100, MAX_RECONNECT_DELAY)
}

/**
 * The adapter's own connection for publishes, lease writes and count queries. No offline queue
 * and no retries: a publish made while Redis is away fails at once (and is counted) instead of
 * waiting in a queue to be delivered late.
 */
export function openCommands (url: string): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: reconnectDelay,
    keepAlive: KEEPALIVE_DELAY
  })
}

/**
 * The adapter's own Redis Cluster client, with the same fail-fast rules as `openCommands`: no
 * offline queue, no retries of a command that failed. ioredis still follows MOVED and ASK
 * redirections, and the commands of one turn to one shard go as one pipeline.
 */
export function openClusterCommands (nodes: ClusterNode[]): Cluster {
  return new Cluster(nodes, {
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    clusterRetryStrategy: reconnectDelay,
    // A command whose shard connection broke (a master killed) or that met CLUSTERDOWN fails at
    // once rather than being sent again after the failover: by then publishes made since have
    // gone out, and the old one would arrive after them.
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    redisOptions: {
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      keepAlive: KEEPALIVE_DELAY
    }
  })
}

/**
 * The subscription connection: unlike publishes, it must wait for Redis however long it takes.
 * On a cluster, one connection per shard (ioredis's sharded subscribers), each moved to the new
 * master of its slots after a failover.
 */
export function openSubscriber (commands: AnyRedis): AnyRedis {
  if (isCluster(commands)) {
    return commands.duplicate(undefined, {
      enableOfflineQueue: true,
      // Subscriptions wait out a failover, whatever the publishing client does.
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      // Subscriptions must go to the shard connections ioredis keeps for them, not be batched elsewhere.
      enableAutoPipelining: false,
      shardedSubscribers: true,
      redisOptions: { ...commands.options.redisOptions, maxRetriesPerRequest: null, autoResubscribe: true, autoResendUnfulfilledCommands: true }
    } satisfies Partial<ClusterOptions>)
  }
  return commands.duplicate({
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    autoResubscribe: true,
    // A SUBSCRIBE or UNSUBSCRIBE in flight when the link broke is sent again (both are safe to
    // repeat): ioredis resubscribes only the channels Redis had confirmed.
    autoResendUnfulfilledCommands: true,
    lazyConnect: false
  } satisfies Partial<RedisOptions>)
}

/** Resolves once the connection is ready. */
export function ready (redis: AnyRedis): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve()
  // A lazyConnect client of the user's would otherwise wait for a first command that never comes.
  if (redis.status === 'wait') redis.connect().catch(ignore)
  return new Promise(resolve => redis.once('ready', resolve))
}

/** Resolves when `done` settles or at the connection's first error, whichever comes first. */
export function unlessFailing (redis: AnyRedis, done: Promise<unknown>): Promise<void> {
  return new Promise(resolve => {
    const finish = (): void => {
      redis.off('error', finish)
      resolve()
    }
    redis.on('error', finish)
    done.then(finish, finish)
  })
}

/**
 * Quits a connection politely when it is up, at once when it is not (a QUIT would wait for
 * Redis), and after `timeout` ms at most (a stalled Redis never answers the QUIT).
 */
export async function shutDown (redis: AnyRedis, timeout: number): Promise<void> {
  if (redis.status === 'ready') await within(redis.quit(), timeout).catch(ignore)
  // After a QUIT this only makes sure no reconnection is pending.
  redis.disconnect()
}
