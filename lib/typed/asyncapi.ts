import type { TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { TypedRouteDescription } from '../hub-core.ts'
import type { WireErrorCode } from './wire.ts'

/** A JSON Schema (draft-07) as plain data: a message payload or part of one. */
export interface JsonSchemaObject {
  readonly [keyword: string]: unknown
}

/** A reference to another part of the document: `{ "$ref": "#/channels/chat" }`. */
export interface AsyncApiReference {
  /** A JSON pointer into this document. */
  $ref: string
}

/** The AsyncAPI Info Object: what the API is. `title` and `version` are required by AsyncAPI. */
export interface AsyncApiInfo {
  /** The API's name. */
  title: string
  /** The API's version (not AsyncAPI's, not this package's). */
  version: string
  /** What the API is for; CommonMark. */
  description?: string
  /** A URL of the terms of service. */
  termsOfService?: string
  /** Who to contact about the API. */
  contact?: { name?: string, url?: string, email?: string }
  /** The API's license. */
  license?: { name: string, url?: string }
}

/** The AsyncAPI Server Object: where the API is served, e.g. `{ host: 'chat.example.com', protocol: 'wss' }`. */
export interface AsyncApiServer {
  /** Host name, optionally with the port. */
  host: string
  /** `ws` or `wss` for this hub's routes. */
  protocol: string
  /**
   * A path before every channel address. Leave it out for a hub: channel addresses are the
   * routes' full paths already.
   */
  pathname?: string
  /** The protocol's version, e.g. `13` for RFC 6455 websockets. */
  protocolVersion?: string
  /** A human-friendly name of the server. */
  title?: string
  /** A short summary of the server. */
  summary?: string
  /** A longer description of the server; CommonMark. */
  description?: string
}

/** What `hub.asyncapi()` takes besides the info. */
export interface AsyncApiOptions {
  /** Servers of the document, by id (letters, digits, `_` and `-`); none by default. */
  servers?: Readonly<Record<string, AsyncApiServer>>
}

/** An AsyncAPI Message Object: one kind of frame, its payload the whole JSON frame. */
export interface AsyncApiMessage {
  /** The frame's `type` (`error` for error frames). */
  name: string
  /** The type, or `<type> reply` for a reply. */
  title: string
  /** Which way it goes and when. */
  summary: string
  /** The JSON Schema of the whole frame. */
  payload: JsonSchemaObject
}

/** An AsyncAPI Parameter Object: a path parameter of a channel address (`/rooms/{room}`). */
export interface AsyncApiParameter {
  /** Which path parameter of the route it is. */
  description: string
}

/** An AsyncAPI Channel Object: one typed route. */
export interface AsyncApiChannel {
  /** The route's full path, Fastify's `:param` written as AsyncAPI's `{param}`. */
  address: string
  /** The route's path as registered with Fastify. */
  title: string
  /** The address's `{param}`s, when it has any. */
  parameters?: Record<string, AsyncApiParameter>
  /** Every frame of the route, inline, except the shared error message, which is a reference. */
  messages: Record<string, AsyncApiMessage | AsyncApiReference>
}

/** An AsyncAPI Operation Reply Object: what the server answers a message that carried an `id`. */
export interface AsyncApiOperationReply {
  /** The route's own channel: replies come back on the same socket. */
  channel: AsyncApiReference
  /** The reply message and the error message, either of which may answer. */
  messages: AsyncApiReference[]
}

/** An AsyncAPI Operation Object: the server receives a message type or sends an event or errors. */
export interface AsyncApiOperation {
  /** `receive`: client to server (a message); `send`: server to client (an event, an error). */
  action: 'send' | 'receive'
  /** The route's channel. */
  channel: AsyncApiReference
  /** What it does. */
  summary: string
  /** The one message of the operation, in its channel. */
  messages: AsyncApiReference[]
  /** On `receive` operations: the answer to a message that carried an `id`. */
  reply?: AsyncApiOperationReply
}

/** The AsyncAPI 3.0 document of a hub's typed routes, as `hub.asyncapi()` returns it: plain JSON data. */
export interface AsyncApiDocument {
  /** The AsyncAPI version the document follows. */
  asyncapi: '3.0.0'
  /** The given info over the defaults. */
  info: AsyncApiInfo
  /** The given servers, when there are any. */
  servers?: Record<string, AsyncApiServer>
  /** Every frame is JSON text. */
  defaultContentType: 'application/json'
  /** One per typed route, by an id made from its path (`/v1/rooms/:room` is `v1_rooms_room`). */
  channels: Record<string, AsyncApiChannel>
  /** By `<channel id>.receive.<type>`, `<channel id>.send.<type>` and `<channel id>.send.error`. */
  operations: Record<string, AsyncApiOperation>
  /** The error message, shared by every channel. */
  components: { messages: { error: AsyncApiMessage } }
}

/**
 * The protocol's error codes with what they mean. `satisfies` makes the compiler refuse this table
 * when a code is added to `WireErrorCode` and not here, so the document cannot fall behind.
 */
const ERROR_CODES = {
  invalid_json: 'not JSON, or JSON with a __proto__ key or a constructor holding prototype',
  invalid_message: 'not an object {"type", "data", "id"?}, or a key other than those',
  unknown_type: 'no such message type on this route',
  invalid_data: '"data" fails its schema; the message names the field and why',
  binary_not_accepted: 'a binary frame on a typed route without onMessage',
  handler_error: 'the handler threw or rejected'
} as const satisfies Record<WireErrorCode, string>

const ID_SCHEMA = { type: ['string', 'number'], description: 'the client\'s message id, echoed' } as const

/** Where an unknown value stands in: any JSON, what an undeclared reply may be. */
const ANY_JSON = {}

/** The plain JSON form of a TypeBox schema: symbol keys (TypeBox's `Kind`, `Optional`) stripped, a fresh copy. */
function toJsonSchema (schema: TSchema): JsonSchemaObject {
  return JSON.parse(JSON.stringify(schema)) as JsonSchemaObject
}

/** A key made of the characters AsyncAPI ids and JSON pointers take plainly, unique among `taken`. */
function uniqueKey (raw: string, taken: Readonly<Record<string, unknown>>): string {
  const base = raw.replace(/[^\w.-]/g, '_')
  let key = base
  for (let n = 2; Object.hasOwn(taken, key); n++) key = `${base}_${n}`
  return key
}

/**
 * Fastify's path to an AsyncAPI address: `:room` (with or without a regular expression after it)
 * becomes `{room}`, and `::` (Fastify's escaped colon) a plain `:`.
 */
function addressOf (url: string): { address: string, parameters: string[] } {
  const parameters: string[] = []
  const address = url.replace(/::|:([\w$]+)(\((?:\\.|[^\\)])*\))?/g, (match, name: string | undefined) => {
    if (name === undefined) return ':'
    parameters.push(name)
    return `{${name}}`
  })
  return { address, parameters }
}

/**
 * The envelope of an incoming message. `data` is required unless its schema accepts no data (the
 * dispatcher checks a missing `data` as `undefined`); a schema that only accepts `undefined`
 * (`Type.Undefined()`, `Type.Void()`) has no JSON form, so such a message is described without it.
 */
function incomingPayload (type: string, schema: TSchema): JsonSchemaObject {
  const data = toJsonSchema(schema)
  const acceptsNoData = Value.Check(schema, undefined)
  const onlyNoData = data.type === 'undefined' || data.type === 'void'
  return {
    type: 'object',
    properties: { type: { const: type }, ...(onlyNoData ? {} : { data }), id: ID_SCHEMA },
    required: acceptsNoData ? ['type'] : ['type', 'data'],
    additionalProperties: false
  }
}

/** The envelope of an event `{"type", "data"}`. */
function eventPayload (type: string, schema: TSchema): JsonSchemaObject {
  return {
    type: 'object',
    properties: { type: { const: type }, data: toJsonSchema(schema) },
    required: ['type', 'data'],
    additionalProperties: false
  }
}

/** The envelope of a reply `{"type", "id", "data"}`; `data` is any JSON where no reply schema is declared. */
function replyPayload (type: string, schema: TSchema | undefined): JsonSchemaObject {
  return {
    type: 'object',
    properties: { type: { const: type }, id: ID_SCHEMA, data: schema === undefined ? ANY_JSON : toJsonSchema(schema) },
    required: ['type', 'id', 'data'],
    additionalProperties: false
  }
}

/** The one error message every channel shares: `{"type":"error","id"?,"error":{"code","message"}}`. */
function errorMessage (): AsyncApiMessage {
  const codes = Object.keys(ERROR_CODES)
  return {
    name: 'error',
    title: 'Error',
    summary: 'An invalid frame or a failed handler; with the message\'s id when it carried one. ' +
      `Codes: ${codes.map(code => `${code} (${ERROR_CODES[code as WireErrorCode]})`).join('; ')}.`,
    payload: {
      type: 'object',
      properties: {
        type: { const: 'error' },
        id: ID_SCHEMA,
        error: {
          type: 'object',
          properties: {
            // An exposed handler error may carry the application's own code instead of handler_error,
            // so the protocol's codes are listed without making every other string invalid.
            code: {
              type: 'string',
              anyOf: [
                { enum: codes, description: 'the protocol\'s codes' },
                { type: 'string', description: 'an application\'s own code, from a handler error marked expose: true' }
              ]
            },
            message: { type: 'string' }
          },
          required: ['code', 'message'],
          additionalProperties: false
        }
      },
      required: ['type', 'error'],
      additionalProperties: false
    }
  }
}

/** Adds one typed route's channel and operations to the document. */
function addRoute (document: AsyncApiDocument, route: TypedRouteDescription): void {
  const { address, parameters } = addressOf(route.url)
  const channelId = uniqueKey(route.url.replace(/^\/+|:/g, '') || 'root', document.channels)
  const channelRef = { $ref: `#/channels/${channelId}` }
  // A route with events only keeps untyped incoming frames, and so answers no error frames.
  const typed = Object.keys(route.messages).length > 0
  const messages: Record<string, AsyncApiMessage | AsyncApiReference> = typed ? { error: { $ref: '#/components/messages/error' } } : {}
  const channel: AsyncApiChannel = { address, title: route.url, messages }
  if (parameters.length > 0) {
    channel.parameters = Object.fromEntries(parameters.map(name => [name, { description: `the route's path parameter :${name}` }]))
  }
  document.channels[channelId] = channel

  const messageRef = (key: string): AsyncApiReference => ({ $ref: `#/channels/${channelId}/messages/${key}` })
  const addOperation = (key: string, operation: Omit<AsyncApiOperation, 'channel'>): void => {
    document.operations[uniqueKey(`${channelId}.${key}`, document.operations)] = { ...operation, channel: channelRef }
  }

  for (const [type, schema] of Object.entries(route.messages)) {
    const key = uniqueKey(`message.${type}`, messages)
    messages[key] = { name: type, title: type, summary: `Client to server: a "${type}" message; with an id to ask for a reply.`, payload: incomingPayload(type, schema) }
    const replySchema = Object.hasOwn(route.replies, type) ? route.replies[type] : undefined
    const replyKey = uniqueKey(`reply.${type}`, messages)
    messages[replyKey] = {
      name: type,
      title: `${type} reply`,
      summary: replySchema === undefined
        ? `Server to client: the answer to a "${type}" message that carried an id: whatever the handler returned (no reply schema is declared), null when it returned nothing.`
        : `Server to client: the answer to a "${type}" message that carried an id.`,
      payload: replyPayload(type, replySchema)
    }
    addOperation(`receive.${type}`, {
      action: 'receive',
      summary: `Handles "${type}"; a message with an id is answered with the reply or an error carrying that id.`,
      messages: [messageRef(key)],
      reply: { channel: channelRef, messages: [messageRef(replyKey), messageRef('error')] }
    })
  }
  for (const [type, schema] of Object.entries(route.events)) {
    const key = uniqueKey(`event.${type}`, messages)
    messages[key] = { name: type, title: type, summary: `Server to client: a "${type}" event.`, payload: eventPayload(type, schema) }
    addOperation(`send.${type}`, { action: 'send', summary: `Sends "${type}" events.`, messages: [messageRef(key)] })
  }
  if (typed) addOperation('send.error', { action: 'send', summary: 'Answers an invalid frame or a failed handler.', messages: [messageRef('error')] })
}

/**
 * Builds the AsyncAPI 3.0 document of typed routes: a channel per route, a `receive` operation per
 * message type (with its reply), a `send` operation per event type and one for error frames. Every
 * payload is the whole frame, the route's TypeBox schema as the `data` of its envelope.
 * @param info merged over the default `{ title: 'fastify-ws-hub', version: '1.0.0' }`
 */
export function buildAsyncApi (
  routes: readonly TypedRouteDescription[],
  info?: Partial<AsyncApiInfo>,
  options?: AsyncApiOptions
): AsyncApiDocument {
  const document: AsyncApiDocument = {
    asyncapi: '3.0.0',
    // A copy, so that the caller may change the document without touching its own objects.
    info: JSON.parse(JSON.stringify({ ...info, title: info?.title ?? 'fastify-ws-hub', version: info?.version ?? '1.0.0' })) as AsyncApiInfo,
    defaultContentType: 'application/json',
    channels: {},
    operations: {},
    components: { messages: { error: errorMessage() } }
  }
  if (options?.servers !== undefined) document.servers = JSON.parse(JSON.stringify(options.servers)) as Record<string, AsyncApiServer>
  for (const route of routes) addRoute(document, route)
  return document
}
