import type { HistoryEntry } from './store.ts'

/** The missed messages of one stream, in offset order. */
export interface MissedStream {
  readonly stream: string
  readonly epoch: string
  readonly entries: readonly HistoryEntry[]
}

/** One message to replay, with where it sits. */
export interface ReplayItem {
  readonly stream: string
  readonly epoch: string
  readonly entry: HistoryEntry
}

/**
 * Whether a recorded message was addressed to this client: not when it was the broadcast's
 * `except`, nor when it is one room's copy of a broadcast to several rooms and the client is in a
 * room listed before that one (it gets the copy of that room, as live delivery does).
 */
export function addressedTo (entry: HistoryEntry, clientId: string, rooms: ReadonlySet<string>): boolean {
  const envelope = entry.envelope
  if (envelope.kind === 'send') return true
  if (envelope.except === clientId) return false
  const via = envelope.via
  if (via === undefined || envelope.rooms === undefined) return true
  for (const room of envelope.rooms) {
    if (room === via) return true
    if (rooms.has(room)) return false
  }
  return true
}

/**
 * Orders the missed messages of several streams into one replay: each stream stays in offset
 * order (the client's position in it must only move forward), and each publisher's messages come
 * in the order it sent them (its ordinal), whichever streams they are in. Among the messages that
 * may come next, the earliest published goes first. Both orders can always be kept on one Redis
 * (or one process), where every stream's order follows one order of arrival; on a Redis Cluster,
 * where streams live on different shards, they may conflict, and the stream order wins.
 */
export function replayOrder (streams: readonly MissedStream[]): ReplayItem[] {
  // Each publisher's ordinals still to replay, ascending: a message may go once it is its publisher's lowest.
  const pending = new Map<string, number[]>()
  for (const { entries } of streams) {
    for (const { origin } of entries) {
      let ordinals = pending.get(origin.node)
      if (ordinals === undefined) pending.set(origin.node, ordinals = [])
      ordinals.push(origin.ordinal)
    }
  }
  for (const ordinals of pending.values()) ordinals.sort((a, b) => a - b)
  const nextOf = new Map<string, number>()
  const emitted = new Map<string, Set<number>>()
  const lowestPending = (node: string): number | undefined => {
    const ordinals = pending.get(node) as number[]
    const done = emitted.get(node)
    let index = nextOf.get(node) ?? 0
    while (index < ordinals.length && done?.has(ordinals[index] as number) === true) index++
    nextOf.set(node, index)
    return ordinals[index]
  }

  const heads = streams.map(() => 0)
  const replay: ReplayItem[] = []
  for (;;) {
    let chosen = -1
    let chosenReady = false
    for (let index = 0; index < streams.length; index++) {
      const entry = (streams[index] as MissedStream).entries[heads[index] as number]
      if (entry === undefined) continue
      const ready = lowestPending(entry.origin.node) === entry.origin.ordinal
      if (chosen >= 0) {
        const best = (streams[chosen] as MissedStream).entries[heads[chosen] as number] as HistoryEntry
        // A head whose publisher has nothing earlier pending beats one that has; then the earliest published.
        if (chosenReady && !ready) continue
        if (chosenReady === ready && best.origin.publishedAt <= entry.origin.publishedAt) continue
      }
      chosen = index
      chosenReady = ready
    }
    if (chosen < 0) return replay
    const stream = streams[chosen] as MissedStream
    const entry = stream.entries[heads[chosen] as number] as HistoryEntry
    heads[chosen] = (heads[chosen] as number) + 1
    let done = emitted.get(entry.origin.node)
    if (done === undefined) emitted.set(entry.origin.node, done = new Set())
    done.add(entry.origin.ordinal)
    replay.push({ stream: stream.stream, epoch: stream.epoch, entry })
  }
}
