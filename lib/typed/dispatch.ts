import type { TSchema } from '@sinclair/typebox'
import type { TypeCheck } from '@sinclair/typebox/compiler'
import type { Client } from '../client.ts'
import { CloseCode } from '../constants.ts'
import { asError, isPromiseLike, notifyError } from '../read-loop.ts'
import { callHandler, UNTYPED_HANDLER } from '../metrics/index.ts'
import { firstFailure, type Serialiser } from './compile.ts'
import { echo, encodeError, encodeReply, isFault, parseMessage, type MessageId } from './wire.ts'

/** A typed message handler as the dispatcher calls it. */
export type TypedHandler = (client: Client, data: unknown) => unknown

/** The untyped handler a typed route may keep for binary frames. */
export type BinaryHandler = (client: Client, data: string | Buffer, isBinary: boolean) => unknown

/** One declared message type of a route, compiled. */
export interface MessageEntry {
  /** The message type, as declared: the label of its handler's duration. */
  readonly type: string
  readonly check: TypeCheck<TSchema>
  readonly handler: TypedHandler
  /** `{"type":"join"`, escaped once, the start of every reply to this type. */
  readonly prefix: string
  /** The declared reply's compiled serialiser, or plain JSON for an undeclared reply. */
  readonly serialiseReply: Serialiser
}

/** What an error thrown by a handler may carry to make its message public (as Fastify's `expose`). */
interface ExposableError extends Error {
  expose?: unknown
  code?: unknown
}

/**
 * Answers an invalid frame with its error frame and counts it; the frame that reaches
 * `maxInvalidMessages` closes the client with 1008 after its error frame.
 */
function refuse (client: Client, code: string, message: string, id: MessageId | undefined): void {
  const core = client._core
  core.counters.invalidMessages++
  core.writeMessage(client, encodeError(code, message, id))
  if (++client._invalidMessages >= core.options.maxInvalidMessages) {
    core.counters.invalidMessageCloses++
    client.close(CloseCode.policyViolation, 'too many invalid messages')
  }
}

/**
 * A handler threw or rejected: an error frame (generic unless the error is exposed), then `onError`.
 * The client stays open: one bad request is not a broken connection.
 */
function handlerFailed (client: Client, id: MessageId | undefined, thrown: unknown): void {
  const core = client._core
  core.counters.handlerErrors++
  const error = asError(thrown) as ExposableError
  const exposed = error.expose === true
  const code = exposed && typeof error.code === 'string' ? error.code : 'handler_error'
  core.writeMessage(client, encodeError(code, exposed ? error.message : 'the handler of this message failed', id))
  notifyError(client, error)
}

/** Answers a message that carried an id with its handler's result (`null` for none). */
function reply (client: Client, entry: MessageEntry, id: MessageId | undefined, result: unknown): void {
  if (id === undefined) return
  let data: string
  try {
    data = result === undefined ? 'null' : entry.serialiseReply(result)
  } catch (error) {
    handlerFailed(client, id, error)
    return
  }
  client._core.writeMessage(client, encodeReply(entry.prefix, id, data))
}

/**
 * Makes the read loop's message handler of a typed route: it parses each text frame, checks its
 * data with the type's compiled checker and calls the type's handler. What it returns for an async
 * handler is a promise that never rejects, so the read loop pauses the socket and queues as for
 * `onMessage`, and a failed handler never closes the client.
 * @param messages the route's message types, compiled
 * @param onBinary the route's `onMessage`, which takes its binary frames
 */
export function createDispatcher (messages: ReadonlyMap<string, MessageEntry>, onBinary: BinaryHandler | undefined): BinaryHandler {
  function run (client: Client, entry: MessageEntry | undefined, id: MessageId | undefined, data: unknown, call: () => unknown): unknown {
    let result: unknown
    try {
      result = callHandler(client._core.metrics, client, entry === undefined ? UNTYPED_HANDLER : entry.type, data, call)
    } catch (error) {
      handlerFailed(client, id, error)
      return undefined
    }
    if (isPromiseLike(result)) {
      return result.then(
        value => { if (entry !== undefined) reply(client, entry, id, value) },
        (error: unknown) => handlerFailed(client, id, error))
    }
    if (entry !== undefined) reply(client, entry, id, result)
    return undefined
  }

  return function dispatchTypedMessage (client: Client, data: string | Buffer, isBinary: boolean): unknown {
    if (isBinary) {
      if (onBinary === undefined) {
        refuse(client, 'binary_not_accepted', 'this route takes text frames of JSON messages, not binary frames', undefined)
        return undefined
      }
      return run(client, undefined, undefined, data, () => onBinary(client, data, true))
    }
    const message = parseMessage(data as string)
    if (isFault(message)) {
      refuse(client, message.code, message.message, message.id)
      return undefined
    }
    const { type, id } = message
    const entry = messages.get(type)
    if (entry === undefined) {
      refuse(client, 'unknown_type', `no message type ${echo(type)} on this route`, id)
      return undefined
    }
    if (!entry.check.Check(message.data)) {
      refuse(client, 'invalid_data', firstFailure(entry.check, message.data), id)
      return undefined
    }
    return run(client, entry, id, message.data, () => entry.handler(client, message.data))
  }
}
