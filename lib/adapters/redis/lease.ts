import type { HubNode } from '../adapter.ts'
import { ignore } from './link.ts'
import { leaseKey, membersKey } from './names.ts'
import type { CommandWatch } from './stall.ts'
import type { AnyRedis } from './transport.ts'

/** Lease hash fields: the node's open clients, and one field per room. */
export const COUNT_FIELD = 'c'
export const ROOM_FIELD = 'r:'

/**
 * A node's lease: the hash `<prefix>:node:<nodeId>` (its open clients and room sizes) with a TTL,
 * listed in the set `<prefix>:nodes`. Written on change and refreshed, one write at a time. Every
 * command touches one key, so the leases spread over the shards of a Redis Cluster (each node's
 * lease on the slot of its own key) and no script needs keys of several slots.
 */
export class Lease {
  readonly #node: HubNode
  readonly #ttl: number
  readonly #refreshEvery: number
  readonly #key: string
  readonly #membersKey: string
  readonly #watch: CommandWatch
  /** The room sizes that the lease in Redis holds (or is being written with), as of `#version`. */
  #rooms = new Map<string, number>()
  #version = -1
  /** The next write must replace the whole lease: at start, after a reconnect, a failed write or a lapse. */
  #rewrite = true
  #refreshedAt = 0
  #writing = false

  /** @param watch sees the lease writes too: on an idle node they are what shows a stall */
  constructor (node: HubNode, prefix: string, ttl: number, watch: CommandWatch) {
    this.#node = node
    this.#watch = watch
    this.#ttl = ttl
    this.#refreshEvery = Math.floor(ttl / 3)
    this.#key = leaseKey(prefix, node.nodeId)
    this.#membersKey = membersKey(prefix)
  }

  /** Makes the next write replace the whole lease (Redis may have come back empty). */
  rewrite (): void {
    this.#rewrite = true
  }

  /**
   * Keeps the lease up to date: nothing when nothing changed and no refresh is due; otherwise one
   * MULTI on the lease key that writes only the count and the rooms whose size changed (a node
   * with a room per user must not rewrite them all at every join) and renews the TTL, then the
   * node's entry in the members set. The entry comes after the lease, so that a reader never finds
   * a listed node without a lease and takes it for dead.
   */
  sync (redis: AnyRedis): void {
    if (this.#writing) return
    const self = this.#node
    const version = self.membershipVersion
    const now = Date.now()
    const changed = this.#rewrite || version !== this.#version
    if (!changed && now - this.#refreshedAt < this.#refreshEvery) return
    const key = this.#key
    const whole = this.#rewrite
    // First, so that its result tells whether the lease was still there (0: it lapsed).
    const transaction = redis.multi().pexpire(key, this.#ttl)
    if (changed) {
      // #rooms is brought up to date now, before the write succeeds: a failed write sets
      // #rewrite, and the next one starts from scratch anyway.
      if (whole) {
        this.#rooms = new Map()
        transaction.del(key)
      }
      const leaseRooms = this.#rooms
      const fields: Array<string | number> = [COUNT_FIELD, self.onlineCount()]
      for (const [room, members] of self.rooms) {
        const size = members.size
        if (leaseRooms.get(room) !== size) {
          leaseRooms.set(room, size)
          fields.push(ROOM_FIELD + room, size)
        }
      }
      // leaseRooms now holds every live room: anything more is a room that emptied.
      if (leaseRooms.size > self.rooms.size) {
        const gone: string[] = []
        for (const room of leaseRooms.keys()) {
          if (self.rooms.has(room)) continue
          leaseRooms.delete(room)
          gone.push(ROOM_FIELD + room)
        }
        transaction.hdel(key, ...gone)
      }
      transaction.hset(key, ...fields).pexpire(key, this.#ttl)
    }
    this.#writing = true
    const written = transaction.exec().then(async (results) => {
      if (results === null || results.some(([error]) => error !== null)) throw new Error('lease transaction failed')
      await redis.sadd(this.#membersKey, self.nodeId)
      return results
    })
    this.#watch.track(written).then((results) => {
      this.#version = version
      this.#refreshedAt = now
      // A lapsed lease (expired, or Redis flushed) got only this write's changes: make it whole.
      this.#rewrite = !whole && results[0]?.[1] === 0
    }).catch((error: unknown) => {
      this.#rewrite = true
      self.log.debug({ err: error }, 'fastify-ws-hub redis: lease not written')
    }).finally(() => { this.#writing = false })
  }

  /** Deletes the lease, so the node leaves the count at once rather than when the lease expires. */
  async remove (redis: AnyRedis): Promise<void> {
    await Promise.all([redis.del(this.#key), redis.srem(this.#membersKey, this.#node.nodeId)]).catch((error: unknown) => {
      this.#node.log.debug({ err: error }, 'fastify-ws-hub redis: lease not deleted; it expires by itself')
    })
  }
}

/**
 * Sums one lease field over every other live node: the members set, then the field of each
 * listed lease, all asked at once (one round trip per shard, in parallel, on a cluster).
 * @param dropDead whether to drop from the members set the nodes whose lease expired (it then
 *   reads the count field, which every live lease holds: a missing one is a lease gone)
 */
export async function sumLeases (redis: AnyRedis, nodeId: string, prefix: string, field: string, dropDead: boolean): Promise<number> {
  const members = membersKey(prefix)
  const ids = (await redis.smembers(members)).filter(id => id !== nodeId)
  const values = await Promise.all(ids.map(id => redis.hget(leaseKey(prefix, id), field)))
  let total = 0
  const dead: string[] = []
  values.forEach((value, index) => {
    if (value !== null) total += Number(value)
    else if (dropDead) dead.push(ids[index] as string)
  })
  // Gone for good: node ids are never reused. A node whose lease lapsed in a stall adds itself back at its next write.
  if (dead.length > 0) redis.srem(members, ...dead).catch(ignore)
  return total
}
