import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import fp from 'fastify-plugin'
import type { WebSocketServer } from 'ws'
import { createAdmission } from './admission.ts'
import { refuseUpgrade } from './upgrade-refusal.ts'
import { refuseWebsocketAfterHub } from './websocket-order.ts'
import { CloseCode } from './constants.ts'
import { SharedDeflate, withSharedDeflate } from './deflate.ts'
import { AlreadyRegisteredError } from './errors.ts'
import { Heartbeat } from './heartbeat.ts'
import { Hub } from './hub.ts'
import { HubCore } from './hub-core.ts'
import { optionWarnings, resolveOptions, type FastifyWsHubOptions } from './options.ts'
import { createOriginCheck } from './origin.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The websocket hub of fastify-ws-hub: clients, rooms, broadcasts, routes. */
    hub: Hub
  }
}

/**
 * Closes the ws server the hub registered, in place of @fastify/websocket's own preClose: sockets
 * of plain `{ websocket: true }` routes (not hub clients) get 1001 too, and whoever has not closed
 * after `shutdownTimeout` is terminated, since ws only reports the server closed once they are gone.
 */
async function closeWebsocketServer (server: WebSocketServer, shutdownTimeout: number): Promise<void> {
  for (const socket of server.clients) socket.close(CloseCode.goingAway, 'server shutdown')
  await new Promise<void>(resolve => {
    const deadline = setTimeout(() => { for (const socket of server.clients) socket.terminate() }, shutdownTimeout)
    server.close(() => {
      clearTimeout(deadline)
      resolve()
    })
  })
}

function refuseUpgradeWhileClosing (_request: unknown, socket: Socket): void {
  refuseUpgrade(socket)
}

/** During shutdown, every upgrade is answered 503 at once and its socket closed, whatever the route. */
function refuseLateUpgrades (fastify: FastifyInstance): void {
  fastify.server.removeAllListeners('upgrade')
  fastify.server.on('upgrade', refuseUpgradeWhileClosing)
}

/** The HTTP server settings that bound how long request headers may take. */
interface HeaderDeadlines {
  listening: boolean
  headersTimeout?: number
  connectionsCheckingInterval?: number
}

/**
 * Node cuts a request whose headers are not complete after `headersTimeout` (60 s by default),
 * checked every `connectionsCheckingInterval` (30 s): a client trickling an upgrade request one
 * byte a second holds a socket for up to 90 s. The hub tightens both before the server listens.
 */
function tightenHeaderDeadline (server: HeaderDeadlines, headersTimeout: number, log: FastifyInstance['log']): void {
  if (typeof server.headersTimeout !== 'number') return
  if (server.listening) {
    log.warn('fastify-ws-hub: the server already listens, so headersTimeout cannot be tightened')
    return
  }
  if (server.headersTimeout === 0 || server.headersTimeout > headersTimeout) server.headersTimeout = headersTimeout
  const checkEvery = Math.min(1_000, headersTimeout)
  if ((server.connectionsCheckingInterval ?? 0) > checkEvery) server.connectionsCheckingInterval = checkEvery
}

/**
 * When the ws server has permessage-deflate on, lets the hub compress each broadcast once for all
 * the sockets that negotiate no server context takeover (SharedDeflate). A @fastify/websocket
 * registered before the hub keeps the options it was given: without `serverNoContextTakeover`,
 * each of its sockets compresses every message itself, which the log says.
 */
function shareCompression (fastify: FastifyInstance, core: HubCore, ownsWebsocketServer: boolean): void {
  const server = fastify.websocketServer
  const perMessageDeflate = server.options.perMessageDeflate
  if (perMessageDeflate === undefined || perMessageDeflate === false) return
  const options = perMessageDeflate === true ? {} : perMessageDeflate
  if (!ownsWebsocketServer && options.serverNoContextTakeover === undefined) {
    fastify.log.warn('fastify-ws-hub: the @fastify/websocket registered before the hub has permessage-deflate without ' +
      'serverNoContextTakeover: every socket compresses every message itself; set it to true to compress each broadcast once')
  }
  core.sharedDeflate = new SharedDeflate(options)
  server.on('headers', core.sharedDeflate.noteHandshake)
}

const fastifyWsHubPlugin: FastifyPluginAsync<FastifyWsHubOptions> = async function fastifyWsHub (fastify, options) {
  const resolved = resolveOptions(options)
  if (fastify.hasDecorator('hub')) throw new AlreadyRegisteredError()
  for (const warning of optionWarnings(resolved)) fastify.log.warn(warning)

  const core = new HubCore(resolved, fastify.log)
  if (resolved.headersTimeout !== false) {
    tightenHeaderDeadline(fastify.server as unknown as HeaderDeadlines, resolved.headersTimeout, fastify.log)
  }
  const heartbeat = new Heartbeat(core)
  if (resolved.allowedOrigins === '*') {
    fastify.log.warn('fastify-ws-hub: allowedOrigins is "*": any web site can open sockets with your users\' cookies')
  }
  const admission = createAdmission(core, createOriginCheck(resolved.allowedOrigins))

  let ownsWebsocketServer = false
  async function closeHub (this: FastifyInstance): Promise<void> {
    core.closing = true
    heartbeat.stop()
    refuseLateUpgrades(fastify)
    await Promise.all([core.closeAll(), core.settleUpgrades()])
    if (ownsWebsocketServer) await closeWebsocketServer(fastify.websocketServer, resolved.shutdownTimeout)
  }

  if (fastify.hasDecorator('websocketServer')) {
    fastify.log.debug('fastify-ws-hub: using the @fastify/websocket registered before it')
    fastify.addHook('preClose', closeHub)
  } else {
    ownsWebsocketServer = true
    const websocket = resolved.websocket
    // ws waits 30 s for a peer to answer a server's close frame; a peer that never does (a socket
    // refused with 1013 after the upgrade, say) would hold app.close() that long. ws >= 8.23 takes
    // closeTimeout (not yet in @types/ws, hence the spread).
    const closeTimeout = { closeTimeout: resolved.shutdownTimeout }
    const options = { ...closeTimeout, ...websocket.options, maxPayload: resolved.maxPayload }
    const perMessageDeflate = withSharedDeflate(options.perMessageDeflate)
    if (perMessageDeflate !== undefined) options.perMessageDeflate = perMessageDeflate
    await fastify.register(fastifyWebsocket, { ...websocket, options, preClose: closeHub })
    refuseWebsocketAfterHub(fastify)
  }
  shareCompression(fastify, core, ownsWebsocketServer)

  const rootHub = new Hub(core, fastify, admission)
  core.hub = rootHub
  const views = new WeakMap<FastifyInstance, Hub>([[fastify, rootHub]])
  fastify.decorate('hub', {
    getter (this: FastifyInstance): Hub {
      let view = views.get(this)
      if (view === undefined) {
        view = rootHub._viewFor(this)
        views.set(this, view)
      }
      return view
    }
  })

  const metricsRoute = resolved.metrics === false ? false : resolved.metrics.route
  if (metricsRoute !== false) {
    fastify.get(metricsRoute, async function serveHubMetrics (_request, reply) {
      const { contentType, body } = await core.exporter.scrape()
      return reply.type(contentType).send(body)
    })
  }

  await core.adapter.start(core)
  core.exporter.start()
  heartbeat.start()
  core.keepSessions()
  fastify.addHook('onClose', async function closeHubAdapter () {
    heartbeat.stop()
    core.stopKeepingSessions()
    core.exporter.stop()
    // The server no longer accepts connections: the late-upgrade refuser has nothing left to do.
    fastify.server.removeListener('upgrade', refuseUpgradeWhileClosing)
    await core.adapter.close()
  })
}

/**
 * The fastify-ws-hub plugin: registers @fastify/websocket when the instance lacks it, and
 * decorates the instance with `hub`.
 */
export const fastifyWsHub = fp(fastifyWsHubPlugin, {
  fastify: '5.x',
  name: 'fastify-ws-hub'
})
