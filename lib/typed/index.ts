export { compileTypedRoute, type CompiledTypedRoute, type TypedRouteOptions } from './typed-route.js'
export { encodeEvent } from './events.js'
export { defineRoute } from './define-route.js'
export type { WireErrorCode, MessageId } from './wire.js'
export type {
  EventType,
  EventsOf,
  HandlerResult,
  HubEvents,
  MessageHandlers,
  MessagesOf,
  NoSchemas,
  RepliesOf,
  ReplySchemas,
  RouteEvents,
  SchemaMap,
  StaticMap
} from './types.js'
// The document builder and its types, all of the module: lib/index.ts chooses what is public.
export * from './asyncapi.js'
