// Every name the adapter uses in Redis, in one place: keys (per database, as Redis keeps them)
// and channels (which Redis shares across databases, so the database is part of the name).

/** The key of a node's lease (without the client's keyPrefix, which ioredis adds). */
export function leaseKey (prefix: string, nodeId: string): string {
  return `${prefix}:node:${nodeId}`
}

/** The key of the set of nodes that hold (or held) a lease. */
export function membersKey (prefix: string): string {
  return `${prefix}:nodes`
}

/**
 * The channel of every envelope. Pub/sub ignores the database a connection selected, so the
 * database number is in the name: apps on `redis://…/1` and `redis://…/2` with one prefix are two
 * clusters, as their keys already are. ioredis adds a client's keyPrefix to keys but not to
 * channels: it is added here, so that a keyPrefix makes a cluster of its own for messages too.
 */
export function messagesChannel (keyPrefix: string, prefix: string, db: number): string {
  return `${keyPrefix}${prefix}:db${db}:messages`
}
