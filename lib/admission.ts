import type { FastifyReply, FastifyRequest } from 'fastify'
import { HubClosingError, OriginForbiddenError, TooManyConnectionsError, TooManyConnectionsPerIpError } from './errors.js'
import type { HubCore } from './hub-core.js'
import type { OriginCheck } from './origin.js'

/**
 * Builds the `onRequest` hook that every hub route runs first, so that a refused upgrade costs
 * no user hook and no upgrade: 503 during shutdown or over `maxConnections`, 429 over
 * `maxConnectionsPerIp`, 403 for a foreign `Origin`. Plain HTTP requests to the route pass through.
 */
export function createAdmission (core: HubCore, originCheck: OriginCheck | undefined) {
  const { maxConnections, maxConnectionsPerIp } = core.options
  return function admitUpgrade (request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void): void {
    if (!request.ws) {
      done()
      return
    }
    if (core.closing) {
      core.counters.rejectedCapacity++
      done(new HubClosingError())
      return
    }
    if (core.clients.size >= maxConnections) {
      core.counters.rejectedCapacity++
      done(new TooManyConnectionsError())
      return
    }
    if ((core.clientsPerIp.get(request.ip) ?? 0) >= maxConnectionsPerIp) {
      core.counters.rejectedPerIp++
      done(new TooManyConnectionsPerIpError())
      return
    }
    const origin = request.headers.origin
    if (origin !== undefined && originCheck !== undefined && !originCheck(origin, request)) {
      core.counters.rejectedOrigin++
      done(new OriginForbiddenError(origin))
      return
    }
    done()
  }
}
