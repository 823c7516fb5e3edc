import { fastifyWsHub } from './plugin.js'

export { fastifyWsHub }
export default fastifyWsHub

export { Type } from '@sinclair/typebox'
export type { Static, TSchema } from '@sinclair/typebox'
export { WebsocketHandshakeSuccess, WebsocketServerPingMsg, CloseCode } from './constants.js'
export {
  AlreadyRegisteredError,
  HandlerError,
  InvalidOptionError,
  InvalidEventError,
  InvalidParamsError,
  InvalidRouteError,
  OriginForbiddenError,
  TooManyConnectionsError,
  TooManyConnectionsPerIpError,
  UnknownEventError,
  UnserializableMessageError
} from './errors.js'
export { Client } from './client.js'
export type { ClientParams, ClientState, PlainUpgradeRequest } from './client.js'
export { Hub } from './hub.js'
export type { BroadcastOptions } from './hub.js'
export type { HubRouteOptions, HubRouteFastifyOptions, HubUpgradeRequest, NoParams, RouteClient } from './route.js'
export { defineRoute } from './typed/index.js'
export type {
  EventType,
  EventsOf,
  HandlerResult,
  HubEvents,
  MessageHandlers,
  MessageId,
  MessagesOf,
  NoSchemas,
  RepliesOf,
  ReplySchemas,
  RouteEvents,
  SchemaMap,
  StaticMap,
  WireErrorCode
} from './typed/index.js'
export type {
  AsyncApiChannel,
  AsyncApiDocument,
  AsyncApiInfo,
  AsyncApiMessage,
  AsyncApiOperation,
  AsyncApiOperationReply,
  AsyncApiOptions,
  AsyncApiParameter,
  AsyncApiReference,
  AsyncApiServer,
  JsonSchemaObject
} from './typed/index.js'
export type { OutgoingMessage } from './message.js'
export type { FastifyWsHubOptions, HeartbeatOptions, HandshakeMessage, AllowedOrigins, RateLimitOptions } from './options.js'
export type { HubStats } from './stats.js'
export type { TypedRouteDescription } from './hub-core.js'
export type { HubAdapter, HubNode, HubEnvelope, BroadcastEnvelope, DirectEnvelope } from './adapters/adapter.js'
export { memoryAdapter, MemoryBus } from './adapters/memory.js'
export type { MemoryAdapterOptions } from './adapters/memory.js'
