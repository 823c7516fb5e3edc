import type { HubAdapter, HubEnvelope, HubNode } from './adapter.ts'
import { MemoryRecoveryHistory } from '../recovery/memory-store.ts'
import { MemoryPresence } from '../presence/memory-store.ts'

/**
 * A set of hubs in one process that behave as one cluster. The default adapter gets a bus of its
 * own (a single hub); passing one bus to several apps joins them, which is how the adapter
 * contract is tested without a network.
 */
export class MemoryBus {
  /** @internal */
  readonly nodes = new Set<HubNode>()
  /** @internal history and sessions of the bus's hubs, for the `recovery` option */
  readonly history = new MemoryRecoveryHistory(this.nodes)
  /** @internal who is in the presence rooms of the bus's hubs, for the `presence` option */
  readonly presence = new MemoryPresence()
}

/** Options of `memoryAdapter`. */
export interface MemoryAdapterOptions {
  /** The bus to join; default a new one (this hub alone). */
  bus?: MemoryBus
}

/**
 * The in-process adapter: the default of every hub. Envelopes reach the other hubs of the same
 * bus synchronously, so each arrives exactly once and in publish order.
 */
export function memoryAdapter (options: MemoryAdapterOptions = {}): HubAdapter {
  const bus = options.bus ?? new MemoryBus()
  let self: HubNode | undefined
  let published = 0

  return {
    recovery: bus.history.forNode(() => self),
    presence: bus.presence.forNode(() => self?.nodeId),
    start (node: HubNode): void {
      self = node
      bus.nodes.add(node)
    },
    publish (envelope: HubEnvelope): boolean {
      let reached = false
      for (const node of bus.nodes) {
        if (node === self) continue
        node.deliver(envelope)
        reached = true
      }
      if (reached) published++
      return reached
    },
    async clusterCount (): Promise<number> {
      let total = 0
      for (const node of bus.nodes) total += node.onlineCount()
      return total
    },
    async clusterRoomSize (room: string): Promise<number> {
      let total = 0
      for (const node of bus.nodes) total += node.roomSize(room)
      return total
    },
    stats () {
      return { published }
    },
    close (): void {
      if (self !== undefined) bus.nodes.delete(self)
      self = undefined
    }
  }
}
