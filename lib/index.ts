import { fastifyWsHub } from './plugin.ts'

export { fastifyWsHub }
export default fastifyWsHub

export { Type } from '@sinclair/typebox'
export type { Static, TSchema } from '@sinclair/typebox'
export { WebsocketHandshakeSuccess, WebsocketServerPingMsg, CloseCode } from './constants.ts'
export {
  AlreadyRegisteredError,
  HandlerError,
  InvalidArgumentError,
  InvalidOptionError,
  NodesTimeoutError,
  InvalidEventError,
  InvalidParamsError,
  InvalidRouteError,
  NotPresenceRoomError,
  OriginForbiddenError,
  TooManyConnectionsError,
  TooManyConnectionsPerIpError,
  UnknownEventError,
  UnserializableMessageError
} from './errors.ts'
export { Client } from './client.ts'
export type { ClientParams, ClientState, PlainUpgradeRequest } from './client.ts'
export { Hub } from './hub.ts'
export type { BroadcastOptions, FetchClientsOptions } from './hub.ts'
export type { ClientInfo } from './control/client-info.ts'
export type { NodeMessageHandler } from './control/cluster-control.ts'
export type { ControlTarget } from './control/targets.ts'
export type { HubRouteOptions, HubRouteFastifyOptions, HubUpgradeRequest, NoParams, RouteClient } from './route.ts'
export { defineRoute } from './typed/index.ts'
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
} from './typed/index.ts'
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
} from './typed/index.ts'
export type { OutgoingMessage } from './message.ts'
export type { FastifyWsHubOptions, HeartbeatOptions, HandshakeMessage, AllowedOrigins, PresenceOptions, RateLimitOptions, RecoveryOptions } from './options.ts'
export type { HubStats } from './stats.ts'
export { ChannelName } from './metrics/index.ts'
export type {
  ConnectionCloseMessage,
  ConnectionOpenMessage,
  HandlerTraceContext,
  MessageInMessage,
  MessageOutMessage,
  MetricsOptions,
  PromClientModule,
  PromCollector,
  PromMetricValues,
  PromRegistry,
  PromSampleValue
} from './metrics/index.ts'
export type { TypedRouteDescription } from './hub-core.ts'
export type { HubAdapter, HubNode, HubEnvelope, BroadcastEnvelope, DirectEnvelope, Interest, NodeAnswer, NodeAudience, NodeMessage } from './adapters/adapter.ts'
export type { PresenceMember, PresenceStore } from './presence/store.ts'
export { memoryAdapter, MemoryBus } from './adapters/memory.ts'
export type { MemoryAdapterOptions } from './adapters/memory.ts'
export type {
  HistoryEntry, HistoryRead, Origin, RecordedEnvelope, RecordedPosition, RecoveryLimits, RecoveryStore, SessionRecord, StreamPosition
} from './recovery/store.ts'
