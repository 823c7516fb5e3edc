// The Redis adapter, `fastify-ws-hub/redis`: the only module of this folder that the package exports.
export { redisAdapter } from './redis-adapter.js'
export { RedisUnavailableError } from './errors.js'
export type { RedisAdapterOptions } from './options.js'
export type { RedisAdapterStats } from './stats.js'
