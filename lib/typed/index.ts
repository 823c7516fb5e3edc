export { compileTypedRoute, type CompiledTypedRoute, type TypedRouteOptions } from './typed-route.ts'
export { encodeEvent } from './events.ts'
export { defineRoute } from './define-route.ts'
export type { WireErrorCode, MessageId } from './wire.ts'
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
} from './types.ts'
// The document builder and its types, all of the module: lib/index.ts chooses what is public.
export * from './asyncapi.ts'
