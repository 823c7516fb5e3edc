import { defineError } from '../../errors.ts'

/**
 * `clusterCount()`, `clusterRoomSize()` or a read of the recovery store (history, sessions) could
 * not get an answer from Redis: it is unreachable, stalled past `stallTimeout`, or failed the
 * command. `cause` holds the underlying error, if any.
 */
export const RedisUnavailableError = defineError<'FST_WS_HUB_REDIS_UNAVAILABLE', 503, [options?: { cause: unknown }]>(
  'FST_WS_HUB_REDIS_UNAVAILABLE', 'Redis is unreachable: cluster-wide counts, history and sessions are unknown until it returns', 503)
