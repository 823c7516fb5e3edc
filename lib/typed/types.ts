import type { Static, TSchema } from '@sinclair/typebox'

/** TypeBox schemas by message or event type: what a route's `messages` and `events` hold. */
export type SchemaMap = Record<string, TSchema>

/** A map with no type in it: the `messages`, `events` and `replies` of a route that declares none. */
export type NoSchemas = Record<never, never>

/** Reply schemas by incoming message type, each optional: a route's `replies`. */
export type ReplySchemas<M> = { [K in keyof M]?: TSchema }

/**
 * The events `app.hub.broadcastEvent` takes, and `sendEvent` on clients of untyped routes. Empty
 * until the application declares its events by module augmentation:
 *
 * ```ts
 * declare module 'fastify-ws-hub' {
 *   interface HubEvents extends EventsOf<typeof chatRoute> {}   // or { said: { from: string, text: string } }
 * }
 * ```
 *
 * `app.hub` exists before any route is registered, so a route's `events` cannot flow into its
 * type; an interface the application completes is how TypeScript learns them hub-wide.
 */
export interface HubEvents {}

/** The static payload of each schema of a map. */
export type StaticMap<M extends SchemaMap> = { [K in keyof M]: Static<M[K]> }

/** The event type names of an events map. */
export type EventType<TEvents> = keyof TEvents & string

/**
 * The events a route's clients may be sent, statically: the route's own `events`, or `HubEvents`
 * for a route that declares none.
 */
export type RouteEvents<E extends SchemaMap> = [keyof E] extends [never] ? HubEvents : StaticMap<E>

/** What the handler of message type `K` may return: the declared reply (or a promise of it), or anything without one. */
export type HandlerResult<R, K> = K extends keyof R
  ? NonNullable<R[K]> extends TSchema ? Static<NonNullable<R[K]>> | Promise<Static<NonNullable<R[K]>>> : unknown
  : unknown

/** A route's `handlers`: exactly one per declared message type, each given that type's static data. */
export type MessageHandlers<M extends SchemaMap, R, TClient> = {
  [K in keyof M]-?: (client: TClient, data: Static<M[K]>) => HandlerResult<R, K>
}

/** The static data of each incoming message type of a route definition (`typeof chatRoute`). */
export type MessagesOf<Route> = Route extends { messages?: infer M extends SchemaMap } ? StaticMap<M> : never

/** The static payload of each event type of a route definition (`typeof chatRoute`). */
export type EventsOf<Route> = Route extends { events?: infer E extends SchemaMap } ? StaticMap<E> : never

/**
 * The static reply of each incoming message type of a route definition: the declared reply's type,
 * or `unknown` (any JSON, `null` when the handler returned nothing) where none is declared.
 */
export type RepliesOf<Route> = Route extends { messages?: infer M, replies?: infer R }
  ? { [K in keyof NonNullable<M>]: K extends keyof NonNullable<R> ? NonNullable<NonNullable<R>[K]> extends TSchema ? Static<NonNullable<NonNullable<R>[K]>> : unknown : unknown }
  : never
