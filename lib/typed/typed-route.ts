import type { TSchema } from '@sinclair/typebox'
import { InvalidRouteError } from '../errors.ts'
import type { HubCore } from '../hub-core.ts'
import { toJson } from '../message.ts'
import { compileCheck, compileSerialiser } from './compile.ts'
import { createDispatcher, type BinaryHandler, type MessageEntry, type TypedHandler } from './dispatch.ts'
import { eventRegistryOf } from './events.ts'
import { typePrefix } from './wire.ts'

/** The route options that make a route typed, as given (unchecked). */
export interface TypedRouteOptions {
  messages?: unknown
  events?: unknown
  replies?: unknown
  handlers?: unknown
  onMessage?: unknown
}

/** A typed route, compiled and checked, ready to be registered. */
export interface CompiledTypedRoute {
  /** The read loop's message handler; undefined for a route with `events` only, whose incoming frames stay untyped. */
  readonly onMessage: BinaryHandler | undefined
  /**
   * Adds the route's events to the hub's registry and its description to the hub's typed routes;
   * called once Fastify has accepted the route.
   * @param url the route's full path, prefix included
   */
  commit (url: string): void
}

function schemaMap (option: string, value: unknown): Record<string, unknown> | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidRouteError(option, 'expected an object of TypeBox schemas by type')
  }
  return value as Record<string, unknown>
}

/**
 * Checks and compiles what makes a route typed: a checker per message type, a serialiser per event
 * and declared reply type, all now, nothing per message.
 * @returns undefined for a route with neither `messages` nor `events`
 * @throws {InvalidRouteError} naming the option that is wrong
 */
export function compileTypedRoute (core: HubCore, options: TypedRouteOptions): CompiledTypedRoute | undefined {
  const messages = schemaMap('messages', options.messages)
  const events = schemaMap('events', options.events)
  const replies = schemaMap('replies', options.replies) ?? {}
  const handlers = schemaMap('handlers', options.handlers) ?? {}
  if (messages === undefined) {
    for (const option of ['replies', 'handlers'] as const) {
      if (options[option] !== undefined) throw new InvalidRouteError(option, 'needs messages: the schemas of the incoming message types')
    }
  }
  if (messages === undefined && events === undefined) return undefined

  const registry = eventRegistryOf(core)
  const eventEntries = registry.prepare(events ?? {})
  // Without messages there are no handlers nor replies (refused above): these loops then see none.
  const declared = messages ?? {}
  for (const type of Object.keys(handlers)) {
    if (!Object.hasOwn(declared, type)) throw new InvalidRouteError(`handlers.${type}`, `"${type}" is not a declared message type`)
    if (typeof handlers[type] !== 'function') throw new InvalidRouteError(`handlers.${type}`, 'expected a function')
  }
  for (const type of Object.keys(replies)) {
    if (!Object.hasOwn(declared, type)) throw new InvalidRouteError(`replies.${type}`, `"${type}" is not a declared message type`)
  }

  const entries = new Map<string, MessageEntry>()
  for (const [type, schema] of Object.entries(declared)) {
    const option = `messages.${type}`
    if (type === 'error') throw new InvalidRouteError(option, '"error" is the type of error frames; give the message another name')
    if (type.startsWith('$')) throw new InvalidRouteError(option, 'types starting with "$" are the hub\'s own frames ($resume); give the message another name')
    const handler = handlers[type]
    if (handler === undefined) throw new InvalidRouteError(option, `has no handler: add handlers.${type}`)
    const replySchema = replies[type]
    entries.set(type, {
      type,
      check: compileCheck(option, schema),
      handler: handler as TypedHandler,
      prefix: typePrefix(type),
      serialiseReply: replySchema === undefined ? toJson : compileSerialiser(type, `replies.${type}`, replySchema, core.options.validateEvents)
    })
  }

  return {
    onMessage: messages === undefined ? options.onMessage as BinaryHandler | undefined : createDispatcher(entries, options.onMessage as BinaryHandler | undefined),
    commit (url: string): void {
      registry.add(eventEntries)
      core.typedRoutes.push({
        url,
        messages: (messages ?? {}) as Record<string, TSchema>,
        events: (events ?? {}) as Record<string, TSchema>,
        replies: replies as Record<string, TSchema>
      })
    }
  }
}
