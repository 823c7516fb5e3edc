// The benches' own view of a Redis server (apart from the systems measured): a connection that
// checks one answers, and the fields of INFO (CPU time, command counts, and the rest).

/**
 * Connects to the Redis at `url` once, without retrying, and checks that it answers PING.
 * @param {typeof import('ioredis').Redis} Redis the ioredis class (the bench imports it itself, to
 *   say so when the package is missing)
 * @param {string} url
 * @returns {Promise<import('ioredis').Redis | undefined>} the connection, or undefined when no Redis answered
 */
export async function reachableRedis (Redis, url) {
  const redis = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
  redis.on('error', () => {})
  try {
    await redis.connect()
    await redis.ping()
    return redis
  } catch {
    redis.disconnect()
    return undefined
  }
}

/**
 * The `field:value` lines of an INFO (or CLUSTER INFO) reply, as an object of strings.
 * @param {string} text
 * @returns {Record<string, string>}
 */
export function parseInfo (text) {
  const fields = {}
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon > 0 && !line.startsWith('#')) fields[line.slice(0, colon)] = line.slice(colon + 1)
  }
  return fields
}

/**
 * A command's call count from its INFO commandstats value (`calls=12,usec=...` -> 12; 0 when the
 * command was never called, and so has no line).
 * @param {string | undefined} stat
 */
export function callsOf (stat) {
  const match = /calls=(\d+)/.exec(stat ?? '')
  return match === null ? 0 : Number(match[1])
}

/**
 * The CPU time Redis has used (user + system, µs), from INFO cpu: read before and after a phase, it
 * gives what the phase cost Redis itself, which no client can see.
 * @param {{ info(section: string): Promise<string> }} client an ioredis connection to that server
 */
export async function redisCpuUs (client) {
  const cpu = parseInfo(await client.info('cpu'))
  return (Number(cpu.used_cpu_sys) + Number(cpu.used_cpu_user)) * 1e6
}
