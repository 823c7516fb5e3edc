import type { NodeAnswer, NodeAudience, NodeMessage } from '../adapters/adapter.ts'
import type { Client } from '../client.ts'
import type { HubCore } from '../hub-core.ts'
import { InvalidArgumentError, NodesTimeoutError, UnserializableMessageError } from '../errors.ts'
import { isPromiseLike } from '../read-loop.ts'
import { describeClient, type ClientInfo } from './client-info.ts'
import { checkCloseCode, checkRoom, targetOf, type ControlTarget, type WireTarget } from './targets.ts'

/** The operations one node asks the others to carry out. */
const FETCH = 'fetch'
const JOIN = 'join'
const LEAVE = 'leave'
const DISCONNECT = 'disconnect'
/** An application's message to the other nodes (`emitToNodes`). */
const EMIT = 'emit'

/** Handles an application's node message: its data, and the id of the node that sent it. */
export type NodeMessageHandler<T = unknown> = (data: T, fromNodeId: string) => void | Promise<void>

/**
 * The hub's cluster-wide operations: each acts on this node's clients at once, then asks the
 * other nodes that may hold targets (through the adapter's `askNodes`) and waits for their
 * answers, so that when the promise resolves every node has acted. Also the receiving side:
 * what a node does when another asks (`handle`).
 */
export class ClusterControl {
  readonly #core: HubCore
  readonly #handlers = new Map<string, Set<NodeMessageHandler>>()

  constructor (core: HubCore) {
    this.#core = core
  }

  /**
   * The clients of every node, or the members of a room.
   * @throws {NodesTimeoutError} when some node did not answer within `timeout` ms (its `partial`: the clients of those that did)
   */
  async fetchClients (room: string | undefined, timeout: number): Promise<ClientInfo[]> {
    if (room !== undefined) checkRoom(room)
    const local = this.#localClients(room)
    const audience: NodeAudience = room === undefined ? { kind: 'all' } : { kind: 'room', room }
    const message: NodeMessage = room === undefined ? { op: FETCH } : { op: FETCH, room }
    return await this.#ask(audience, message, timeout, local, (answers) => {
      const all = [...local]
      for (const { answer } of answers) {
        if (Array.isArray(answer)) all.push(...answer as ClientInfo[])
      }
      return all
    })
  }

  /**
   * Makes the target clients join (or leave) a room on every node; resolves once each node's
   * clients have joined (their node receives the room's broadcasts).
   * @returns the number of clients it acted on
   */
  async joinOrLeave (op: 'join' | 'leave', target: ControlTarget, room: string, timeout: number): Promise<number> {
    checkRoom(room)
    const wire = targetOf(target)
    return await this.#act({ op, target: wire, room }, wire, timeout)
  }

  /**
   * Closes the target clients on every node with a close code (1000, or 3000-4999) and reason.
   * @returns the number of clients it closed
   */
  async disconnect (target: ControlTarget, code: number, reason: string, timeout: number): Promise<number> {
    checkCloseCode(code, reason)
    const wire = targetOf(target)
    return await this.#act({ op: DISCONNECT, target: wire, code, reason }, wire, timeout)
  }

  /**
   * Sends an application message to every other node (not to this one).
   * @returns false when it could not leave this node (no other node, link down)
   */
  emitToNodes (type: string, data: unknown): boolean {
    if (typeof type !== 'string' || type === '') throw new InvalidArgumentError('type', 'expected a non-empty string')
    // Checked here, so that a value with no JSON form fails the same way on every adapter.
    try {
      JSON.stringify(data ?? null)
    } catch (error) {
      throw new UnserializableMessageError((error as Error).message)
    }
    return this.#core.adapter.notifyNodes?.({ kind: 'all' }, { op: EMIT, type, data: data ?? null }) ?? false
  }

  /**
   * Adds a handler of the application's node messages of one type.
   * @returns a function that removes it
   */
  onNodeMessage (type: string, handler: NodeMessageHandler): () => void {
    if (typeof type !== 'string' || type === '') throw new InvalidArgumentError('type', 'expected a non-empty string')
    if (typeof handler !== 'function') throw new InvalidArgumentError('handler', 'expected a function')
    let handlers = this.#handlers.get(type)
    if (handlers === undefined) {
      handlers = new Set()
      this.#handlers.set(type, handlers)
    }
    handlers.add(handler)
    return () => { this.#handlers.get(type)?.delete(handler) }
  }

  /**
   * What this node does when another asks: its answer, as plain JSON. A message that makes no
   * sense (another version, garbage on the channel) is answered `null`, so the asker is not held.
   */
  async handle (message: NodeMessage, from: string): Promise<unknown> {
    try {
      switch (message.op) {
        case FETCH: {
          const room = message.room
          if (room !== undefined && typeof room !== 'string') break
          return this.#localClients(room)
        }
        case JOIN:
        case LEAVE: {
          const target = wireTarget(message.target)
          if (target === undefined || typeof message.room !== 'string') break
          return await this.#joinOrLeaveHere(message.op, target, message.room)
        }
        case DISCONNECT: {
          const target = wireTarget(message.target)
          const { code, reason } = message
          if (target === undefined || typeof code !== 'number' || typeof reason !== 'string') break
          checkCloseCode(code, reason)
          return this.#disconnectHere(target, code, reason)
        }
        case EMIT:
          if (typeof message.type !== 'string') break
          this.#emitHere(message.type, message.data, from)
          return null
      }
    } catch (error) {
      this.#core.log.warn({ err: error, op: message.op, from }, 'fastify-ws-hub: a node message failed here')
      return null
    }
    this.#core.log.warn({ op: message.op, from }, 'fastify-ws-hub: ignored a node message that is not well formed')
    return null
  }

  /** Acts here, then on the other nodes that may hold the target; the count of clients acted on. */
  async #act (message: NodeMessage & { target: WireTarget }, target: WireTarget, timeout: number): Promise<number> {
    const here = (await this.handle(message, this.#core.nodeId) as number | null) ?? 0
    // A client id is unique in the cluster: held here, it is nowhere else.
    if ('id' in target && this.#core.clients.has(target.id)) return here
    const audience: NodeAudience = 'id' in target ? { kind: 'client', id: target.id } : { kind: 'room', room: target.room }
    return await this.#ask(audience, message, timeout, here, (answers) => {
      let total = here
      for (const { answer } of answers) {
        if (typeof answer === 'number') total += answer
      }
      return total
    })
  }

  /** Asks the other nodes, and merges their answers with this node's; on a timeout, the error carries the merge of those that came. */
  async #ask<T>(audience: NodeAudience, message: NodeMessage, timeout: number, local: T, merge: (answers: readonly NodeAnswer[]) => T): Promise<T> {
    const adapter = this.#core.adapter
    if (adapter.askNodes === undefined) return local
    const self = this.#core.nodeId
    try {
      return merge(await adapter.askNodes(audience, message, timeout))
    } catch (error) {
      if (!(error instanceof NodesTimeoutError)) throw error
      const answers = error.partial as NodeAnswer[]
      throw new NodesTimeoutError(error.missing, timeout, [self, ...answers.map(answer => answer.nodeId)], merge(answers))
    }
  }

  #localClients (room: string | undefined): ClientInfo[] {
    const core = this.#core
    const clients = room === undefined ? core.clients.values() : core.rooms.get(room) ?? []
    const infos: ClientInfo[] = []
    for (const client of clients) {
      if (client.state === 'open') infos.push(describeClient(client, core.nodeId))
    }
    return infos
  }

  /** This node's open clients that a target names. A copy: joining or closing them changes the room's set. */
  #targets (target: WireTarget): Client[] {
    const core = this.#core
    if ('id' in target) {
      const client = core.clients.get(target.id)
      return client === undefined || client.state !== 'open' ? [] : [client]
    }
    return [...core.rooms.get(target.room) ?? []].filter(client => client.state === 'open')
  }

  async #joinOrLeaveHere (op: 'join' | 'leave', target: WireTarget, room: string): Promise<number> {
    const clients = this.#targets(target)
    if (op === LEAVE) {
      for (const client of clients) client.leave(room)
    } else {
      // Answered once every one has joined: the room's broadcasts then reach this node.
      await Promise.all(clients.map(async client => { await client.join(room) }))
    }
    return clients.length
  }

  #disconnectHere (target: WireTarget, code: number, reason: string): number {
    const clients = this.#targets(target)
    for (const client of clients) client.close(code, reason)
    return clients.length
  }

  #emitHere (type: string, data: unknown, from: string): void {
    const handlers = this.#handlers.get(type)
    if (handlers === undefined) return
    for (const handler of handlers) {
      // One failing handler neither stops the others nor reaches the adapter that delivered the message.
      try {
        const result = handler(data, from)
        if (isPromiseLike(result)) result.then(undefined, (error: unknown) => { this.#handlerFailed(error, type) })
      } catch (error) {
        this.#handlerFailed(error, type)
      }
    }
  }

  #handlerFailed (error: unknown, type: string): void {
    this.#core.counters.handlerErrors++
    this.#core.log.error({ err: error, type }, 'fastify-ws-hub: an onNodeMessage handler failed')
  }
}

/** A target as it came from another node, checked; undefined when it is not one. */
function wireTarget (value: unknown): WireTarget | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const { id, room } = value as { id?: unknown, room?: unknown }
  if (typeof id === 'string') return { id }
  if (typeof room === 'string') return { room }
  return undefined
}
