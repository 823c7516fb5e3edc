import type { HubAdapter, HubEnvelope, HubNode, NodeAnswer, NodeMessage } from './adapter.ts'
import { NodesTimeoutError } from '../errors.ts'
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
    async askNodes (_audience, message: NodeMessage, timeout: number): Promise<NodeAnswer[]> {
      const from = self?.nodeId ?? ''
      // Every other node gets it (each answers for what it holds), as a copy through JSON: what
      // crosses a real network could not share objects with the sender either.
      const others = [...bus.nodes].filter(node => node !== self)
      const answers: NodeAnswer[] = []
      const all = Promise.all(others.map(async (node) => {
        const answer = await node.handleNodeMessage(viaJson(message), from)
        answers.push({ nodeId: node.nodeId, answer: viaJson(answer) })
      }))
      let timer: NodeJS.Timeout | undefined
      const expired = new Promise<never>((resolve, reject) => {
        timer = setTimeout(() => { reject(new NodesTimeoutError(others.length - answers.length, timeout, answers.map(answer => answer.nodeId), [...answers])) }, timeout)
      })
      try {
        await Promise.race([all, expired])
        return answers
      } finally {
        clearTimeout(timer)
      }
    },
    notifyNodes (_audience, message: NodeMessage): boolean {
      const from = self?.nodeId ?? ''
      let reached = false
      for (const node of bus.nodes) {
        if (node === self) continue
        // Nothing to wait for: handleNodeMessage never rejects.
        node.handleNodeMessage(viaJson(message), from)
        reached = true
      }
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

/** A copy of a plain JSON value, as another process would receive it. */
function viaJson<T> (value: T): T {
  return value === undefined ? value : JSON.parse(JSON.stringify(value))
}
