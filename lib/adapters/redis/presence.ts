import type { HubNode } from '../adapter.ts'
import type { PresenceMember, PresenceStore } from '../../presence/store.ts'
import { RedisUnavailableError } from './errors.ts'
import { ignore } from './link.ts'
import { leaseKey, presenceKey, presenceNodeKey, presenceNodesKey } from './names.ts'
import { within, type CommandWatch } from './stall.ts'
import type { AdapterCounters } from './stats.ts'
import type { AnyRedis } from './transport.ts'

// Presence in Redis: a hash per room (field: client id, value: the member as JSON, its node first,
// `{"nodeId":<nodeId>,"id":<id>,"params":<params>,"since":<since>}`), on the slot of the room's
// channel. A member's node is the first field so that the scripts can tell whose an entry is by its
// start, without a JSON parser in Lua. The value is the whole `PresenceMember`, id included, so
// that a read is HVALS (half the replies of HGETALL) and one JSON.parse of the values joined gives
// the members themselves, with no object made per entry besides.

/** The names of the scripts as ioredis knows them (`defineCommand`); long, as they land on a client that may be the application's. */
const EXIT_COMMAND = 'fastifyWsHubPresenceExit'
const REAP_COMMAND = 'fastifyWsHubPresenceReap'

/**
 * Removes one entry, only if it is the calling node's: a client that resumed on another node has
 * been entered there since, and the old node's late exit must not remove it.
 * KEYS[1] the room's hash; ARGV[1] the client id, ARGV[2] the start of the node's entries. Returns 1 when removed.
 */
const EXIT_SCRIPT = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, #ARGV[2]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
`

/**
 * Removes every entry of one node from a room's hash and returns their values. Atomic, so
 * that of several reapers at once only one gets a dead node's members, and tells of their leave.
 * KEYS[1] the room's hash; ARGV[1] the start of the node's entries.
 */
const REAP_SCRIPT = `
local all = redis.call('HGETALL', KEYS[1])
local gone = {}
for i = 1, #all, 2 do
  local v = all[i + 1]
  if string.sub(v, 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    gone[#gone + 1] = v
  end
end
return gone
`

/** A client or pipeline with the presence scripts defined on it (ioredis adds the methods at run time). */
interface WithPresenceScripts {
  fastifyWsHubPresenceExit (key: string, clientId: string, owner: string): Promise<number>
  fastifyWsHubPresenceReap (key: string, owner: string): Promise<string[]>
}

/** Defines the presence scripts on a client (idempotent): EVALSHA with EVAL as fallback. */
export function definePresenceScripts (redis: AnyRedis): void {
  redis.defineCommand(EXIT_COMMAND, { numberOfKeys: 1, lua: EXIT_SCRIPT })
  redis.defineCommand(REAP_COMMAND, { numberOfKeys: 1, lua: REAP_SCRIPT })
}

/** How every entry of a node starts: what the scripts compare. */
function ownerMark (nodeId: string): string {
  return `{"nodeId":${JSON.stringify(nodeId)},`
}

function encodeMember (member: PresenceMember): string {
  return `${ownerMark(member.nodeId)}"id":${JSON.stringify(member.id)},"params":${JSON.stringify(member.params)},"since":${member.since}}`
}

const OPEN = Buffer.from('[')
const COMMA = Buffer.from(',')
const CLOSE = Buffer.from(']')

/**
 * Decodes a hash's values (as HVALS, or the reaper's script, gives them) at once: one JSON.parse
 * of them all joined is several times faster than one per entry on a room of thousands, and
 * Buffers rather than strings spare ioredis a string per reply. An entry that is not one of ours
 * (written by something else) is skipped.
 */
function decodeMembers (values: ReadonlyArray<Buffer | string>): PresenceMember[] {
  let stored: unknown[]
  try {
    const parts: Buffer[] = [OPEN]
    values.forEach((value, index) => {
      if (index > 0) parts.push(COMMA)
      parts.push(Buffer.isBuffer(value) ? value : Buffer.from(value))
    })
    parts.push(CLOSE)
    stored = JSON.parse(Buffer.concat(parts).toString()) as unknown[]
  } catch {
    stored = values.map((value) => {
      try {
        return JSON.parse(value.toString()) as unknown
      } catch {
        return undefined
      }
    })
  }
  return stored.filter(isMember)
}

/** Whether a decoded entry has a member's shape. */
function isMember (value: unknown): value is PresenceMember {
  const entry = value as Partial<PresenceMember> | undefined
  return typeof entry?.nodeId === 'string' && typeof entry.id === 'string' && typeof entry.since === 'number' &&
    typeof entry.params === 'object' && entry.params !== null
}

/** What the store needs of the adapter, known once it starts. */
export interface PresenceLink {
  readonly node: HubNode
  readonly redis: AnyRedis
  readonly watch: CommandWatch
  readonly stats: AdapterCounters
  /** `<prefix>:db<n>`: the start of the room hashes' keys. */
  readonly keys: string
  readonly prefix: string
  /** Whether a command sent now can be expected to reach Redis and be answered in time. */
  readonly available: () => boolean
}

/**
 * The Redis adapter's presence store (see `PresenceStore`). Each node writes its own members and
 * keeps them in memory too, so that it can write them again when Redis comes back empty. It lists
 * itself, and the rooms it has entries in, in presence's own sets; every node that uses presence
 * reaps, every `leaseTtl / 4`, the entries of listed nodes whose lease is gone, and tells its hub
 * (`presenceLapsed`) of those its script removed, so each leave is told once.
 */
export class RedisPresence implements PresenceStore {
  readonly #leaseTtl: number
  readonly #stallTimeout: number
  #link: PresenceLink | undefined
  /** This node's members, per room: what it writes again after Redis lost them. */
  readonly #local = new Map<string, Map<string, PresenceMember>>()
  /** Exits that could not be written (Redis away): done when it is back, and told then as lapses. */
  readonly #pendingExits = new Map<string, Map<string, PresenceMember>>()
  /** Rooms in this node's set in Redis, as far as it knows. */
  readonly #listed = new Set<string>()
  #registered = false
  /** Redis may have lost this node's entries (a reconnect, a failed write, a reaper that took it for dead). */
  #rewrite = false
  #writing = false
  #reaping = false
  #reaper: NodeJS.Timeout | undefined
  #closed = false

  constructor (leaseTtl: number, stallTimeout: number) {
    this.#leaseTtl = leaseTtl
    this.#stallTimeout = stallTimeout
  }

  /** Connects the store to the adapter's connection, at the adapter's start. */
  attach (link: PresenceLink): void {
    this.#link = link
    definePresenceScripts(link.redis)
  }

  async enter (room: string, member: PresenceMember): Promise<void> {
    let members = this.#local.get(room)
    if (members === undefined) this.#local.set(room, members = new Map())
    members.set(member.id, member)
    this.#pendingExits.get(room)?.delete(member.id)
    this.#startReaper()
    const link = this.#link
    if (link === undefined || !link.available()) {
      this.#failed()
      return
    }
    try {
      await within(link.watch.track(this.#write(link, room, member)), this.#stallTimeout)
    } catch {
      this.#failed()
    }
  }

  async exit (room: string, clientId: string): Promise<boolean> {
    const members = this.#local.get(room)
    const member = members?.get(clientId)
    if (members === undefined || member === undefined) return false
    members.delete(clientId)
    if (members.size === 0) this.#local.delete(room)
    const link = this.#link
    const command = link === undefined || !link.available() || this.#closed ? undefined : this.#exitScript(link, room, clientId)
    try {
      if (link === undefined || command === undefined) throw new RedisUnavailableError()
      return await within(link.watch.track(command), this.#stallTimeout) === 1
    } catch {
      // Not told now: the hub would tell a leave that Redis may not have. Told when the exit is written.
      let pending = this.#pendingExits.get(room)
      if (pending === undefined) this.#pendingExits.set(room, pending = new Map())
      pending.set(clientId, member)
      this.#failed()
      // A stalled Redis runs the command when it wakes up: its answer is the one that counts.
      command?.then((removed) => {
        if (pending.get(clientId) !== member) return
        pending.delete(clientId)
        if (removed === 1) link?.node.presenceLapsed(room, [member])
      }, ignore)
      return false
    }
  }

  async members (room: string): Promise<PresenceMember[]> {
    const link = this.#link
    if (link === undefined || !link.available()) throw new RedisUnavailableError()
    this.#startReaper()
    try {
      return await within(link.watch.track(this.#read(link, room)), this.#stallTimeout)
    } catch (error) {
      throw new RedisUnavailableError({ cause: error })
    }
  }

  /** Redis may have come back empty (a reconnect): write this node's entries again. */
  rewrite (): void {
    this.#rewrite = true
  }

  /** At the adapter's tick: writes again what Redis may have lost, once it answers. */
  sync (): void {
    const link = this.#link
    if (!this.#rewrite || this.#writing || this.#closed || link === undefined || !link.available()) return
    this.#rewrite = false
    this.#registered = false
    this.#listed.clear()
    this.#writing = true
    const writes: Array<Promise<unknown>> = []
    for (const [room, pending] of this.#pendingExits) {
      for (const [id, member] of pending) {
        writes.push(this.#exitScript(link, room, id).then((removed) => {
          if (pending.get(id) !== member) return
          pending.delete(id)
          if (removed === 1) link.node.presenceLapsed(room, [member])
        }))
      }
    }
    for (const [room, members] of this.#local) {
      for (const member of members.values()) writes.push(this.#write(link, room, member))
    }
    within(link.watch.track(Promise.all(writes)), this.#stallTimeout).then(() => {
      for (const [room, pending] of this.#pendingExits) if (pending.size === 0) this.#pendingExits.delete(room)
    }, () => {
      this.#failed()
    }).finally(() => { this.#writing = false })
  }

  /**
   * Removes the entries of dead nodes (lease gone) and tells the hub of those this node's script
   * removed. Also notices when this node's own set is gone (Redis flushed, or a reaper took this
   * node for dead in a stall) and writes its entries again.
   */
  async reap (): Promise<void> {
    const link = this.#link
    if (this.#reaping || this.#closed || link === undefined || !link.available()) return
    this.#reaping = true
    const { redis, prefix, node } = link
    try {
      await within(link.watch.track((async () => {
        const [nodeIds, ownSet] = await Promise.all([
          redis.smembers(presenceNodesKey(prefix)),
          this.#listed.size > 0 ? redis.exists(presenceNodeKey(prefix, node.nodeId)) : Promise.resolve(1)
        ])
        if (ownSet === 0) this.#rewrite = true
        const others = nodeIds.filter(id => id !== node.nodeId)
        const alive = await Promise.all(others.map(id => redis.exists(leaseKey(prefix, id))))
        const dead = others.filter((_, index) => alive[index] === 0)
        await Promise.all(dead.map(id => this.#reapNode(link, id)))
      })()), this.#leaseTtl)
    } catch {
      this.#failed()
    } finally {
      this.#reaping = false
    }
  }

  /** Removes a dead node's entries room by room, tells the hub of those this call removed, then drops its sets. */
  async #reapNode (link: PresenceLink, nodeId: string): Promise<void> {
    const { redis, prefix, keys, node } = link
    const rooms = await redis.smembers(presenceNodeKey(prefix, nodeId))
    const mark = ownerMark(nodeId)
    await Promise.all(rooms.map(async (room) => {
      const gone = await (redis as unknown as WithPresenceScripts).fastifyWsHubPresenceReap(presenceKey(keys, room), mark)
      if (gone.length === 0) return
      node.presenceLapsed(room, decodeMembers(gone))
    }))
    await redis.del(presenceNodeKey(prefix, nodeId))
    await redis.srem(presenceNodesKey(prefix), nodeId)
  }

  /** At the adapter's close, while Redis answers: removes what is left of this node's entries and sets. */
  async close (): Promise<void> {
    this.#closed = true
    clearInterval(this.#reaper)
    const link = this.#link
    if (link === undefined || !link.available() || (!this.#registered && this.#local.size === 0)) return
    const { redis, prefix, keys, node } = link
    const mark = ownerMark(node.nodeId)
    const rooms = await redis.smembers(presenceNodeKey(prefix, node.nodeId)).catch(() => [...this.#listed])
    await Promise.all(rooms.map(room => (redis as unknown as WithPresenceScripts).fastifyWsHubPresenceReap(presenceKey(keys, room), mark)))
    await redis.del(presenceNodeKey(prefix, node.nodeId))
    await redis.srem(presenceNodesKey(prefix), node.nodeId)
  }

  /** The reaper runs only on nodes that use presence; a quarter of the lease between two rounds. */
  #startReaper (): void {
    if (this.#reaper !== undefined || this.#closed) return
    this.#reaper = setInterval(() => { this.reap().catch(ignore) }, Math.max(10, Math.floor(this.#leaseTtl / 4))).unref()
  }

  /** Lists the node and the room first, so that a reaper finds every entry this node has. */
  async #write (link: PresenceLink, room: string, member: PresenceMember): Promise<void> {
    const { redis, prefix, keys } = link
    const listings: Array<Promise<unknown>> = []
    if (!this.#registered) {
      this.#registered = true
      listings.push(redis.sadd(presenceNodesKey(prefix), member.nodeId))
    }
    if (!this.#listed.has(room)) {
      this.#listed.add(room)
      listings.push(redis.sadd(presenceNodeKey(prefix, member.nodeId), room))
    }
    try {
      await Promise.all([...listings, redis.hset(presenceKey(keys, room), member.id, encodeMember(member))])
    } catch (error) {
      // Not sure what Redis holds: list everything again at the next sync.
      this.#rewrite = true
      throw error
    }
  }

  #exitScript (link: PresenceLink, room: string, clientId: string): Promise<number> {
    return (link.redis as unknown as WithPresenceScripts).fastifyWsHubPresenceExit(presenceKey(link.keys, room), clientId, ownerMark(link.node.nodeId))
  }

  /** Every member of a room, less those of nodes whose lease is gone (one EXISTS per distinct node). */
  async #read (link: PresenceLink, room: string): Promise<PresenceMember[]> {
    const { redis, prefix, keys, node } = link
    const members = decodeMembers(await redis.callBuffer('HVALS', presenceKey(keys, room)) as Buffer[])
    const nodes = new Set<string>()
    for (const member of members) if (member.nodeId !== node.nodeId) nodes.add(member.nodeId)
    if (nodes.size === 0) return members
    const ids = [...nodes]
    const alive = await Promise.all(ids.map(id => redis.exists(leaseKey(prefix, id))))
    const dead = new Set(ids.filter((_, index) => alive[index] === 0))
    return dead.size === 0 ? members : members.filter(member => !dead.has(member.nodeId))
  }

  #failed (): void {
    if (this.#link !== undefined) this.#link.stats.presenceFailed++
    this.#rewrite = true
  }
}
