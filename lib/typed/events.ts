import type { TSchema } from '@sinclair/typebox'
import { InvalidRouteError, UnknownEventError } from '../errors.ts'
import type { HubCore } from '../hub-core.ts'
import type { EncodedMessage } from '../message.ts'
import { compileSerialiser, type Serialiser } from './compile.ts'
import { encodeEventFrame, typePrefix } from './wire.ts'

/** One declared event type: its schema and what builds its frames. */
export interface EventEntry {
  readonly type: string
  readonly schema: TSchema
  /** The schema as JSON, to tell the same schema declared again by another route from a different one. */
  readonly json: string
  /** `{"type":"said"`, escaped once. */
  readonly prefix: string
  readonly serialise: Serialiser
}

/**
 * Every event type the typed routes of one hub declare, each with one compiled serialiser. All event
 * frames of the hub are built here, whatever sends them (`client.sendEvent`, `hub.broadcastEvent`).
 */
export class EventRegistry {
  readonly #events = new Map<string, EventEntry>()
  readonly #validate: boolean

  /** @param validate check each payload against its schema before it is sent (`validateEvents`) */
  constructor (validate: boolean) {
    this.#validate = validate
  }

  /**
   * Compiles a route's events and checks them against those already declared, registering nothing:
   * the route is registered with Fastify first, and only then are they added.
   * @throws {InvalidRouteError} naming the event that is not a usable schema, or that another route declares differently
   */
  prepare (events: Readonly<Record<string, unknown>>): EventEntry[] {
    const entries: EventEntry[] = []
    for (const [type, schema] of Object.entries(events)) {
      const option = `events.${type}`
      if (type === 'error') throw new InvalidRouteError(option, '"error" is the type of error frames; give the event another name')
      // The client's on('status') and on('message') are its own lifecycle: an event so named could not be listened to
      if (type.startsWith('$')) throw new InvalidRouteError(option, 'types starting with "$" are the hub\'s own frames ($session); give the event another name')
      if (type === 'status' || type === 'message' || type === 'session') throw new InvalidRouteError(option, `"${type}" is a lifecycle name of the client's on(); give the event another name`)
      const serialise = compileSerialiser(type, option, schema, this.#validate)
      const json = JSON.stringify(schema)
      const known = this.#events.get(type)
      if (known !== undefined && known.schema !== schema && known.json !== json) {
        throw new InvalidRouteError(option, `another typed route of this hub declares the event "${type}" with a different schema; ` +
          'an event type has one schema hub-wide (declare it once and share the schema object)')
      }
      entries.push({ type, schema: schema as TSchema, json, prefix: typePrefix(type), serialise })
    }
    return entries
  }

  /** Adds events that `prepare` accepted; a type already declared keeps its first serialiser. */
  add (entries: readonly EventEntry[]): void {
    for (const entry of entries) {
      if (!this.#events.has(entry.type)) this.#events.set(entry.type, entry)
    }
  }

  /**
   * Builds the text frame payload of an event, `{"type":T,"data":D}`, serialising the data once.
   * @throws {UnknownEventError} when no typed route declares the type
   * @throws {InvalidEventError} when the data does not fit its schema (always for a missing required
   * property; for anything else only with `validateEvents`)
   */
  encode (type: string, data: unknown): EncodedMessage {
    const entry = this.#events.get(type)
    if (entry === undefined) {
      const declared = [...this.#events.keys()].map(name => JSON.stringify(name)).join(', ')
      throw new UnknownEventError(String(type), declared === '' ? 'none' : declared)
    }
    return encodeEventFrame(entry.prefix, entry.serialise(data))
  }
}

const registries = new WeakMap<HubCore, EventRegistry>()

/** The event registry of a hub, made on first use. */
export function eventRegistryOf (core: HubCore): EventRegistry {
  let registry = registries.get(core)
  if (registry === undefined) {
    registry = new EventRegistry(core.options.validateEvents)
    registries.set(core, registry)
  }
  return registry
}

/**
 * Builds an event frame payload for a hub.
 * @throws {UnknownEventError} when no typed route of the hub declares the type
 * @throws {InvalidEventError} when the data does not fit its schema
 */
export function encodeEvent (core: HubCore, type: string, data: unknown): EncodedMessage {
  return eventRegistryOf(core).encode(type, data)
}
