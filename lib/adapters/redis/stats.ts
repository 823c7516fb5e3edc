/** Counters of the Redis adapter, in `hub.stats()` as `adapter.<name>`. */
export interface RedisAdapterStats {
  /** Envelopes Redis accepted (one PUBLISH each; a recorded one, one record script each). */
  published: number
  /** Envelopes from other nodes delivered here (this node's own recorded ones, which come back through Redis, are not counted). */
  received: number
  /**
   * Bytes of every message that came on this node's subscriptions, its own envelopes and those
   * dropped included: what Redis sent it and it decoded. With per-room channels, those of its rooms.
   */
  receivedBytes: number
  /**
   * Envelopes not sent: Redis unreachable or stalled, or more than `maxPendingBytes` waiting for
   * it (never queued, never replayed).
   */
  dropped: number
  /** Messages on the channel that are not envelopes of this adapter; ignored. */
  malformed: number
  /**
   * Envelopes from other nodes that came more than `maxDeliveryDelay` after their publish, or after
   * a later envelope of their publisher on their channel: dropped (never a recorded one: see
   * redis-adapter.ts).
   */
  late: number
  /** Envelopes from other nodes that never came (a jump in a publisher's sequence numbers). */
  lost: number
  /** Jumps in other nodes' sequence numbers: each is a run of one or more lost envelopes. */
  gaps: number
  /**
   * Session writes that nobody waits for (join, leave, touch, end of a session) that failed or
   * were not sent (Redis unreachable): such a session may lapse early or miss a room on resume.
   */
  recoveryFailed: number
  /**
   * Presence writes that failed or were not sent (Redis unreachable), and reaper rounds that
   * failed: written again when Redis is back (an exit then, if it removes the entry, is told as a leave).
   */
  presenceFailed: number
  /** Now (not a counter): other nodes whose sequence numbers this node tracks; forgotten when their lease is gone. */
  publishers: number
  /** Now (not a counter): bytes of envelopes handed to Redis and not yet acknowledged; at most `maxPendingBytes`. */
  pendingBytes: number
  /** Now (not a counter): room and client channels this node subscribes to (lingering ones included), besides everyone's. */
  subscriptions: number
}

/** The counters the adapter increments itself (the others are derived when `stats()` is read). */
export type AdapterCounters = Pick<RedisAdapterStats, 'published' | 'received' | 'receivedBytes' | 'dropped' | 'malformed' | 'late' | 'recoveryFailed' | 'presenceFailed'>
