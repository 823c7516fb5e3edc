import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { OriginForbiddenError, TooManyConnectionsError, TooManyConnectionsPerIpError } from './errors.ts'
import type { HubCore } from './hub-core.ts'
import type { OriginCheck } from './origin.ts'

/**
 * Builds the `onRequest` hook that every hub route runs first, so that a refused upgrade costs
 * no user hook and no upgrade: 503 over `maxConnections`, 429 over
 * `maxConnectionsPerIp`, 403 for a foreign `Origin`. Plain HTTP requests to the route pass through.
 */
export function createAdmission (core: HubCore, originCheck: OriginCheck | undefined) {
  const { maxConnections, maxConnectionsPerIp } = core.options
  // request.ip costs a getpeername() system call per upgrade: only pay it when addresses are counted.
  const countsAddresses = maxConnectionsPerIp < Number.MAX_SAFE_INTEGER
  return function admitUpgrade (request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void): void {
    if (!request.ws) {
      done()
      return
    }
    if (core.connectionCount() >= maxConnections) {
      core.counters.rejectedCapacity++
      done(new TooManyConnectionsError())
      return
    }
    const ip = countsAddresses ? request.ip ?? '' : ''
    if (countsAddresses && (core.clientsPerIp.get(ip) ?? 0) >= maxConnectionsPerIp) {
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
    const raw = request.raw
    const socket = raw.socket as Socket | undefined
    // A socket destroyed during an earlier async hook has closed already: no close event would free
    // the slot, and ws will drop the upgrade without a word.
    if (socket?.destroyed === true) {
      done()
      return
    }
    core.reserve(raw, ip)
    done()
    // Without an async hook, the later hooks, the upgrade and the hub's handler all ran inside
    // done(): the upgrade is settled already, and watching its socket would cost a listener, a
    // closure and a map entry per upgrade for nothing. Only one still pending needs the watch; its
    // socket cannot have emitted `close` yet, which Node emits on a later tick.
    if (socket !== undefined && core.reserved(raw)) watchSocket(core, raw, socket)
  }
}

/**
 * Frees the slots of a reserved upgrade if its peer leaves before it settles (ws then drops the
 * socket without a word). A refused upgrade is released by the route's `onResponse`.
 */
function watchSocket (core: HubCore, raw: IncomingMessage, socket: Socket): void {
  const release = (): void => { core.releaseReservation(raw) }
  socket.once('close', release)
  pendingReleases.set(raw, () => socket.removeListener('close', release))
}

/** How to stop watching a reserved upgrade's socket once it became a client. */
const pendingReleases = new WeakMap<object, () => void>()

/** Stops watching a reserved upgrade's socket: its upgrade was settled one way or the other. */
function stopWatching (raw: object): void {
  pendingReleases.get(raw)?.()
  pendingReleases.delete(raw)
}

/**
 * The upgrade became a client: its slots now belong to the client, the socket watch ends.
 * @returns the address its IP slot was counted under ('' when addresses are not counted)
 */
export function settleAdmission (core: HubCore, request: FastifyRequest): string {
  stopWatching(request.raw)
  return core.settleReservation(request.raw)
}

/** The upgrade was answered over HTTP (refused): its slots are free again. */
export function releaseAdmission (core: HubCore, request: FastifyRequest): void {
  stopWatching(request.raw)
  core.releaseReservation(request.raw)
}
