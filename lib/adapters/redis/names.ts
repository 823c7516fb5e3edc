// Every name the adapter uses in Redis, in one place: keys (per database, as Redis keeps them)
// and channels (which Redis shares across databases, so the database is part of the name).
//
// Channels are per audience, so that a node receives only what its own clients can get:
//   <base>:all              broadcasts to every client (every node subscribes)
//   <base>:room:{<room>}    broadcasts to a room (nodes with a local member subscribe)
//   <base>:client:{<id>}    sendTo one client (the node that holds it subscribes)
// On Redis Cluster a channel lives on the shard of its hash slot; the braces make the slot that
// of the room or client alone, so that whatever else is kept per room later (its history) can
// live on the same shard as its channel.

/** The key of a node's lease (without the client's keyPrefix, which ioredis adds). */
export function leaseKey (prefix: string, nodeId: string): string {
  return `${prefix}:node:${nodeId}`
}

/** The key of the set of nodes that hold (or held) a lease. */
export function membersKey (prefix: string): string {
  return `${prefix}:nodes`
}

/**
 * The start of every channel name of a cluster. Pub/sub ignores the database a connection
 * selected, so the database number is in the name: apps on `redis://…/1` and `redis://…/2` with
 * one prefix are two clusters, as their keys already are. ioredis adds a client's keyPrefix to
 * keys but not to channels: it is added here, so that a keyPrefix makes a cluster of its own for
 * messages too.
 */
export function channelBase (keyPrefix: string, prefix: string, db: number): string {
  return `${keyPrefix}${prefix}:db${db}`
}

/** The channel of broadcasts to every client. */
export function allChannel (base: string): string {
  return `${base}:all`
}

/** The channel of a room's broadcasts. */
export function roomChannel (base: string, room: string): string {
  return `${base}:room:{${room}}`
}

/** The channel of the messages sent to one client with `sendTo`. */
export function clientChannel (base: string, clientId: string): string {
  return `${base}:client:{${clientId}}`
}
