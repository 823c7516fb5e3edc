import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { FastifyWsHubOptions, HubAdapter, PresenceOptions } from '../dist/index.js'
import { connect, createApp, listen, waitFor, type TestClient } from './helpers.js'

/** Rooms whose name starts with `p:` have presence in these tests; `params: ['userId']` is shared. */
export const PRESENCE: PresenceOptions = { rooms: room => room.startsWith('p:'), params: ['userId'] }

/** A presence event as a client receives it. */
export interface PresenceEvent {
  type: '$join' | '$leave'
  data: { room: string, id: string, params: Record<string, unknown> }
}

/** One hub of a presence test. */
export interface PresenceNode {
  app: FastifyInstance
  url: string
}

/** A client of a presence node: its hub id and the presence events it got. */
export interface PresenceClient extends TestClient {
  id: string
  events (): PresenceEvent[]
}

/**
 * Starts a hub with presence and a route `/ws`: `?user=<id>` becomes `client.params.userId` (and
 * a `secret` param that presence must not share), `?rooms=a,b` are joined before the client gets
 * its id (`id:<id>`); the text messages `join:<room>` and `leave:<room>` join and leave.
 */
export async function startPresenceNode (t: TestContext, adapter?: HubAdapter, options: Partial<FastifyWsHubOptions> = {}): Promise<PresenceNode> {
  const app = await createApp(t, { handshakeMessage: false, presence: PRESENCE, ...(adapter === undefined ? {} : { adapter }), ...options })
  app.hub.route({
    url: '/ws',
    onUpgrade (request) {
      const { user } = request.query as { user?: string }
      return { userId: user ?? 'anonymous', secret: 'not shared' }
    },
    async onOpen (client) {
      const { rooms } = client.request.query as { rooms?: string }
      await Promise.all((rooms?.split(',') ?? []).map(room => client.join(room)))
      client.send(`id:${client.id}`)
    },
    async onMessage (client, data) {
      const text = String(data)
      if (text.startsWith('join:')) await client.join(text.slice(5))
      if (text.startsWith('leave:')) client.leave(text.slice(6))
    }
  })
  return { app, url: await listen(app) }
}

/** Connects a client as `user`, in the given rooms, and waits for its id. */
export async function enter (node: Pick<PresenceNode, 'url'>, user: string, rooms: string[]): Promise<PresenceClient> {
  const client = await connect(`${node.url}/ws?user=${user}&rooms=${rooms.join(',')}`)
  // Its id frame, not whatever came first: another member's $join may come before it.
  await waitFor(() => client.messages.some(message => message.startsWith('id:')), 2000, `${user}'s id`)
  const id = (client.messages.find(message => message.startsWith('id:')) as string).slice(3)
  const events = (): PresenceEvent[] => client.messages.filter(message => message.startsWith('{"type":"$')).map(message => JSON.parse(message) as PresenceEvent)
  return Object.assign(client, { id, events })
}

/** The ids of the events of one type a client got, in order. */
export function idsOf (client: PresenceClient, type: PresenceEvent['type']): string[] {
  return client.events().filter(event => event.type === type).map(event => event.data.id)
}
