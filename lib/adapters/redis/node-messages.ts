import type { HubNode, NodeAnswer, NodeAudience, NodeMessage } from '../adapter.ts'
import { NodesTimeoutError } from '../../errors.ts'
import { RedisUnavailableError } from './errors.ts'
import { ignore } from './link.ts'
import { allChannel, clientChannel, nodeChannel, roomChannel } from './names.ts'
import { decodeAnswer, decodeQuestion, encodeAnswer, encodeQuestion } from './node-codec.ts'
import type { Outbox } from './outbox.ts'
import type { AdapterCounters } from './stats.ts'

/** A question waiting for its answers. */
interface Pending {
  /** How many nodes Redis gave it to (this one included when it listens on the channel); unknown until PUBLISH answers. */
  receivers: number | undefined
  /** This node got its own question: one receiver that does not answer. */
  heardSelf: boolean
  readonly answers: NodeAnswer[]
  readonly timer: NodeJS.Timeout
  readonly resolve: (answers: NodeAnswer[]) => void
  readonly reject: (error: Error) => void
}

/** What node messages need of the adapter, once it has started. */
export interface NodeMessagesLink {
  readonly node: HubNode
  readonly outbox: Outbox
  /** The start of every channel name (`channelBase`). */
  readonly base: string
  readonly stats: AdapterCounters
  /** Whether Redis can be expected to take a command now. */
  readonly available: () => boolean
}

/**
 * Node messages over Redis pub/sub: a question goes on the channel of its audience (everyone's,
 * a room's, a client's), so it reaches the nodes that subscribe to it: those that hold the room's
 * members or the client. PUBLISH answers with how many subscribers got it, so the asker knows how
 * many answers to wait for; each node answers on the asker's own channel. A node that has ended
 * is no longer subscribed and is not counted; one that hangs is, and the question times out.
 */
export class NodeMessages {
  #link: NodeMessagesLink | undefined
  #lastId = 0
  readonly #pending = new Map<number, Pending>()

  /** Starts with the adapter. */
  attach (link: NodeMessagesLink): void {
    this.#link = link
  }

  /** This node's own channel, where answers to its questions come. */
  get channel (): string {
    const link = this.#link as NodeMessagesLink
    return nodeChannel(link.base, link.node.nodeId)
  }

  /** See `HubAdapter.askNodes`. */
  async ask (audience: NodeAudience, message: NodeMessage, timeout: number): Promise<NodeAnswer[]> {
    const link = this.#link
    if (link === undefined || !link.available()) throw new RedisUnavailableError()
    const requestId = ++this.#lastId
    const question = encodeQuestion(requestId, link.node.nodeId, message)
    return await new Promise<NodeAnswer[]>((resolve, reject) => {
      const timer = setTimeout(() => { this.#expire(requestId, timeout) }, timeout)
      this.#pending.set(requestId, { receivers: undefined, heardSelf: false, answers: [], timer, resolve, reject })
      link.outbox.pushNodeMessage(this.#channelOf(audience), question, {
        sent: (receivers) => {
          const pending = this.#pending.get(requestId)
          if (pending === undefined) return
          pending.receivers = receivers
          this.#settleIfDone(requestId, pending)
        },
        failed: () => { this.#fail(requestId, new RedisUnavailableError()) }
      })
    })
  }

  /** See `HubAdapter.notifyNodes`. */
  notify (audience: NodeAudience, message: NodeMessage): boolean {
    const link = this.#link
    if (link === undefined || !link.available()) {
      if (link !== undefined) link.stats.dropped++
      return false
    }
    link.outbox.pushNodeMessage(this.#channelOf(audience), encodeQuestion(0, link.node.nodeId, message), {
      sent: () => {},
      failed: () => { link.stats.dropped++ }
    })
    return true
  }

  /**
   * A node message that came on any channel this node listens on: acted on and answered. Before
   * the adapter's check of its subscriptions on purpose: Redis counted this node as a receiver, so
   * it answers even on a channel it is leaving (it holds nothing there: an empty answer).
   */
  onQuestion (raw: Buffer): void {
    const link = this.#link as NodeMessagesLink
    const question = decodeQuestion(raw)
    if (question === undefined) {
      link.stats.malformed++
      return
    }
    const { requestId, from, message } = question
    const self = link.node
    if (from === self.nodeId) {
      // Its own question, heard on a channel it listens on: one of the receivers PUBLISH counted.
      const pending = this.#pending.get(requestId)
      if (pending !== undefined) {
        pending.heardSelf = true
        this.#settleIfDone(requestId, pending)
      }
      return
    }
    const answer = self.handleNodeMessage(message, from)
    if (requestId === 0) return
    // handleNodeMessage never rejects: the promise needs no catch.
    Promise.resolve(answer).then((value) => {
      link.outbox.pushNodeMessage(nodeChannel(link.base, from), encodeAnswer(requestId, self.nodeId, value), { sent: () => {}, failed: () => {} })
    }, ignore)
  }

  /** An answer on this node's channel. */
  onAnswer (raw: Buffer): void {
    const link = this.#link as NodeMessagesLink
    const decoded = decodeAnswer(raw)
    if (decoded === undefined) {
      link.stats.malformed++
      return
    }
    const pending = this.#pending.get(decoded.requestId)
    // Late (the question timed out) or not ours: nobody waits for it.
    if (pending === undefined || pending.answers.some(answer => answer.nodeId === decoded.from)) return
    pending.answers.push({ nodeId: decoded.from, answer: decoded.answer })
    this.#settleIfDone(decoded.requestId, pending)
  }

  /** Fails every question still waiting (the adapter closes). */
  close (): void {
    for (const requestId of [...this.#pending.keys()]) this.#fail(requestId, new RedisUnavailableError())
  }

  #channelOf (audience: NodeAudience): string {
    const base = (this.#link as NodeMessagesLink).base
    if (audience.kind === 'room') return roomChannel(base, audience.room)
    if (audience.kind === 'client') return clientChannel(base, audience.id)
    return allChannel(base)
  }

  #settleIfDone (requestId: number, pending: Pending): void {
    if (pending.receivers === undefined) return
    if (pending.answers.length + (pending.heardSelf ? 1 : 0) < pending.receivers) return
    this.#pending.delete(requestId)
    clearTimeout(pending.timer)
    pending.resolve(pending.answers)
  }

  #expire (requestId: number, timeout: number): void {
    const pending = this.#pending.get(requestId)
    if (pending === undefined) return
    this.#pending.delete(requestId)
    if (pending.receivers === undefined) {
      // PUBLISH itself never answered: Redis, not a node, is what failed to answer.
      pending.reject(new RedisUnavailableError())
      return
    }
    // This node may not have heard its own question yet, though it was one of the receivers.
    const missing = Math.max(1, pending.receivers - pending.answers.length - (pending.heardSelf ? 1 : 0))
    pending.reject(new NodesTimeoutError(missing, timeout, pending.answers.map(answer => answer.nodeId), [...pending.answers]))
  }

  #fail (requestId: number, error: Error): void {
    const pending = this.#pending.get(requestId)
    if (pending === undefined) return
    this.#pending.delete(requestId)
    clearTimeout(pending.timer)
    pending.reject(error)
  }
}
