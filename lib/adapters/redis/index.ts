// The Redis adapter, `fastify-ws-hub/redis`: the only module of this folder that the package exports.
export { redisAdapter } from './redis-adapter.ts'
export { RedisUnavailableError } from './errors.ts'
export type { RedisAdapterOptions } from './options.ts'
export type { RedisAdapterStats } from './stats.ts'
