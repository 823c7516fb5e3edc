import type { Client } from '../client.ts'

/** A client as `hub.fetchClients()` describes it, wherever in the cluster it is connected. */
export interface ClientInfo<TParams = Record<string, unknown>> {
  /** The client's id. */
  readonly id: string
  /** The node (process) that holds it. */
  readonly nodeId: string
  /** The URL of its route (`/chat/:room` as registered, prefix included). */
  readonly route: string
  /** The rooms it has joined. */
  readonly rooms: readonly string[]
  /** What `onUpgrade` returned for it, as JSON (`{}` for params with no JSON form, such as one holding a BigInt). */
  readonly params: TParams
  /** When its socket opened, ms since the epoch. */
  readonly connectedAt: number
}

/**
 * A client's description, as plain JSON: the same whether it is read here or comes from another
 * node (params go through JSON either way, so a Date is a string in both).
 */
export function describeClient (client: Client, nodeId: string): ClientInfo {
  return {
    id: client.id,
    nodeId,
    route: client.request.routeOptions.url ?? '',
    rooms: [...client.rooms],
    params: asJson(client.params),
    connectedAt: client.connectedAt
  }
}

/** Params' JSON form, parsed back; `{}` when they have none. */
function asJson (params: object): Record<string, unknown> {
  try {
    return JSON.parse(JSON.stringify(params))
  } catch {
    return {}
  }
}
