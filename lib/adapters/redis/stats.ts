/** Counters of the Redis adapter, in `hub.stats()` as `adapter.<name>`. */
export interface RedisAdapterStats {
  /** Envelopes Redis accepted (one PUBLISH each). */
  published: number
  /** Envelopes from other nodes delivered here. */
  received: number
  /** Envelopes not sent because Redis was unreachable (never queued, never replayed). */
  dropped: number
  /** Messages on the channel that are not envelopes of this adapter; ignored. */
  malformed: number
}
