// The only door of `fastify-ws-hub/client`: it loads no server code and has no dependencies, so
// the same file runs in browsers and in Node.
export { createClient } from './hub-client.ts'
export { HubClientError, type HubClientErrorCode } from './errors.ts'
export type {
  BinaryData,
  ClientOptions,
  ClientSession,
  ClientSocket,
  ClientStatus,
  EventName,
  HubClient,
  IncomingData,
  LifecycleName,
  MessageType,
  PresenceEvent,
  PresenceEventName,
  RawData,
  ReconnectOptions,
  ReplyOf,
  RequestOptions,
  Unsubscribe,
  WebSocketConstructor
} from './types.ts'
