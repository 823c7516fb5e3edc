import createError from '@fastify/error'

/** `clusterCount()` or `clusterRoomSize()` was called while Redis is unreachable. */
export const RedisUnavailableError = createError<'FST_WS_HUB_REDIS_UNAVAILABLE', 503, []>(
  'FST_WS_HUB_REDIS_UNAVAILABLE', 'Redis is unreachable: cluster-wide counts are unknown until it returns', 503)
