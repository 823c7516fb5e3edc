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

// Keys of session recovery (see history.ts and sessions.ts). Each is on the hash slot of the
// channel its messages go out on, so that one script can append to a stream and publish on its
// channel at once on a Redis Cluster (a script may touch keys and shard channels of one slot only):
//   <prefix>:db<n>:history:room:{<room>}   a room's stream, and meta:room:{<room>} its epoch and last offset
//   <prefix>:db<n>:history:all:{<base>:all} the stream of broadcasts to everyone, and meta:all:{<base>:all}
//   <prefix>:db<n>:history:client:{<id>}   a client's stream; its epoch and last offset are in its session
//   <prefix>:db<n>:session:{<id>}          a client's session record
// `room`, `all` and `client` keep a room named like a client id from sharing a client's stream.
// The everyone channel has no braces, so its whole name is its hash tag in the `all` keys. Keys
// are given without the client's keyPrefix (ioredis adds it); `base` holds it, as a channel must.

/** The start of every recovery key of a cluster, without the client's keyPrefix. */
export function keyBase (prefix: string, db: number): string {
  return `${prefix}:db${db}`
}

/** The history stream of a room. */
export function roomHistoryKey (keys: string, room: string): string {
  return `${keys}:history:room:{${room}}`
}

/** The epoch and last offset of a room's stream (hash fields `e`, `o`). */
export function roomMetaKey (keys: string, room: string): string {
  return `${keys}:meta:room:{${room}}`
}

/** The history stream of broadcasts to everyone: on the slot of the channel `allChannel(base)`. */
export function allHistoryKey (keys: string, base: string): string {
  return `${keys}:history:all:{${allChannel(base)}}`
}

/** The epoch and last offset of the stream of broadcasts to everyone. */
export function allMetaKey (keys: string, base: string): string {
  return `${keys}:meta:all:{${allChannel(base)}}`
}

/** The history stream of the messages sent to one client. */
export function clientHistoryKey (keys: string, clientId: string): string {
  return `${keys}:history:client:{${clientId}}`
}

/** A client's session record, with its stream's epoch and last offset (fields `e`, `o`). */
export function sessionKey (keys: string, clientId: string): string {
  return `${keys}:session:{${clientId}}`
}

/** The channel of one node's own messages: the answers to what it asked the other nodes (`askNodes`). */
export function nodeChannel (base: string, nodeId: string): string {
  return `${base}:node:{${nodeId}}`
}

// Keys of presence (see presence.ts):
//   <prefix>:db<n>:presence:{<room>}   a room's members (field: client id), on the slot of the room's channel
//   <prefix>:presence:nodes            the nodes that have (or had) presence entries: what reapers look at
//   <prefix>:presence:node:<nodeId>    the rooms a node has entries in: what a reaper cleans when it dies
// The two sets are presence's own, not `<prefix>:nodes`: that one loses a dead node as soon as any
// node sums the leases, before its presence entries are reaped.

/** The hash of a room's presence entries. */
export function presenceKey (keys: string, room: string): string {
  return `${keys}:presence:{${room}}`
}

/** The set of nodes with presence entries. */
export function presenceNodesKey (prefix: string): string {
  return `${prefix}:presence:nodes`
}

/** The set of rooms a node has presence entries in. */
export function presenceNodeKey (prefix: string, nodeId: string): string {
  return `${prefix}:presence:node:${nodeId}`
}
