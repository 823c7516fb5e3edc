import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { FastifyWsHubOptions } from '../dist/index.js'
import { createApp, listen } from './helpers.js'

/** The params the control route gives each client: from its URL's query. */
export interface ControlParams {
  user: string
}

/** A node of the control tests, and what its clients' `onClose` hooks saw. */
export interface ControlNode {
  app: FastifyInstance
  /** ws:// URL of its route `/ws` (`?user=<name>&room=<room>` joins the room on open). */
  url: string
  /** Close codes and reasons its clients' `onClose` got, by client id. */
  closes: Map<string, { code: number, reason: string }>
}

/**
 * The route of the control tests, as source text: the same in this process and in the child
 * processes (plain JavaScript on the built package) that the Redis tests kill or stop.
 */
export const CONTROL_ROUTE = `{
  url: '/ws',
  onUpgrade: (request) => ({ user: String(request.query.user ?? 'anonymous') }),
  onOpen: async (client) => {
    const room = client.request.query.room
    if (room !== undefined) await client.join(String(room))
    client.send('ready')
  },
  onMessage: (client, data) => { client.send('echo:' + String(data)) }
}`

/** Starts a node with the control route, its clients' closes recorded. */
export async function controlNode (t: TestContext, options: FastifyWsHubOptions = {}): Promise<ControlNode> {
  const app = await createApp(t, { handshakeMessage: false, ...options })
  const closes = new Map<string, { code: number, reason: string }>()
  app.hub.route<ControlParams>({
    url: '/ws',
    onUpgrade: (request) => ({ user: String((request.query as { user?: string }).user ?? 'anonymous') }),
    onOpen: async (client) => {
      const room = (client.request.query as { room?: string }).room
      if (room !== undefined) await client.join(room)
      client.send('ready')
    },
    onMessage: (client, data) => { client.send(`echo:${String(data)}`) },
    onClose: (client, code, reason) => { closes.set(client.id, { code, reason }) }
  })
  return { app, url: `${await listen(app)}/ws`, closes }
}

/** The id of a node's client by its user name. */
export function idOf (node: { app: FastifyInstance }, user: string): string {
  for (const client of node.app.hub.clients.values()) {
    if ((client.params as unknown as ControlParams).user === user) return client.id
  }
  throw new Error(`no client of user ${user} on this node`)
}
