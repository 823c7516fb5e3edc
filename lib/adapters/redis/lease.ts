import type { Redis } from 'ioredis'
import type { HubNode } from '../adapter.ts'
import { leaseKey, membersKey } from './names.ts'
import type { CommandWatch } from './stall.ts'

/** Lease hash fields: the node's open clients, and one field per room. */
export const COUNT_FIELD = 'c'
export const ROOM_FIELD = 'r:'

/**
 * Sums one field of every other live node's lease. Run as one script: one round trip and no race
 * between reading the members and dropping the dead ones (whose lease key has expired).
 */
const SUM_LEASES = `
local total = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[1] then
    local value = redis.call('HGET', ARGV[2] .. id, ARGV[3])
    if value then
      total = total + tonumber(value)
    elseif ARGV[4] == '1' and redis.call('EXISTS', ARGV[2] .. id) == 0 then
      redis.call('SREM', KEYS[1], id)
    end
  end
end
return total`

/**
 * A node's lease: the hash `<prefix>:node:<nodeId>` (its open clients and room sizes) with a TTL,
 * listed in the set `<prefix>:nodes`. Written on change and refreshed, one write at a time.
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
   * MULTI that writes only the count and the rooms whose size changed (a node with a room per user
   * must not rewrite them all at every join), and renews the TTL.
   */
  sync (redis: Redis): void {
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
    this.#watch.track(transaction.sadd(this.#membersKey, self.nodeId).exec()).then((results) => {
      if (results === null || results.some(([error]) => error !== null)) throw new Error('lease transaction failed')
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
  async remove (redis: Redis): Promise<void> {
    await redis.multi().del(this.#key).srem(this.#membersKey, this.#node.nodeId).exec().catch((error: unknown) => {
      this.#node.log.debug({ err: error }, 'fastify-ws-hub redis: lease not deleted; it expires by itself')
    })
  }
}

/**
 * Sums one lease field over every other live node, in one script.
 * @param keyPrefix the client's ioredis keyPrefix: the script builds key names, so it must add it itself
 * @param dropDead whether to drop from the members set the nodes whose lease expired
 */
export async function sumLeases (redis: Redis, nodeId: string, prefix: string, keyPrefix: string, field: string, dropDead: boolean): Promise<number> {
  const others = await redis.eval(SUM_LEASES, 1, membersKey(prefix), nodeId, keyPrefix + leaseKey(prefix, ''), field, dropDead ? '1' : '0')
  return Number(others)
}
