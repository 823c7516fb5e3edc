import type { IncomingMessage } from 'node:http'
import { constants, deflateRawSync, type ZlibOptions } from 'node:zlib'
import type { PerMessageDeflateOptions, WebSocket } from 'ws'
import { frameData, type Frame } from './frame.ts'
import type { EncodedMessage } from './message.ts'

/** ws compresses nothing smaller than this (bytes) when the server has no context takeover. */
const DEFAULT_THRESHOLD = 1024
/** The LZ77 window when the client did not limit it (RFC 7692 `server_max_window_bits` absent). */
const DEFAULT_WINDOW_BITS = 15
/** Z_SYNC_FLUSH ends the output with an empty stored block, 00 00 ff ff: RFC 7692 7.2.1 drops it. */
const SYNC_FLUSH_TAIL = 4
const EXTENSIONS_HEADER = 'sec-websocket-extensions:'

/**
 * One set of parameters a message is compressed with: the window the socket allows the server
 * (`server_max_window_bits`) and the server's zlib settings. Without context takeover, a message
 * compresses to the same bytes for every socket of a profile, so a broadcast compresses once per
 * profile, not once per socket.
 */
export class DeflateProfile {
  /** The server's window, in bits, for the sockets of this profile (8 to 15). */
  readonly windowBits: number
  /** Payloads shorter than this (bytes) go uncompressed, as ws sends them (RSV1 clear). */
  readonly threshold: number
  readonly #zlib: ZlibOptions

  /** @internal profiles are made by `SharedDeflate`, one per window size */
  constructor (windowBits: number, threshold: number, zlib: ZlibOptions) {
    this.windowBits = windowBits
    this.threshold = threshold
    this.#zlib = { ...zlib, windowBits, finishFlush: constants.Z_SYNC_FLUSH }
  }

  /**
   * The message's frame for the sockets of this profile: compressed (RSV1 set) from `threshold`
   * bytes on, plain below. Synchronous on purpose: the frame is ready in the turn that sends it,
   * so it takes its place among the socket's other frames of that turn, and a zlib context that
   * lives only for the call costs no memory between broadcasts (BENCHMARKS.md, "Compression").
   */
  frame (message: EncodedMessage): Frame {
    const payload = message.payload
    if (payload.length < this.threshold) return frameData(payload, message.binary)
    const deflated = deflateRawSync(payload, this.#zlib)
    return frameData(deflated.subarray(0, deflated.length - SYNC_FLUSH_TAIL), message.binary, true)
  }
}

/**
 * How the hub writes a socket's messages: `'none'` when it negotiated no compression (plain
 * frames), a profile when the server compresses without context takeover (shared compressed
 * frames), `'per-socket'` when the server keeps its context (only ws, with the socket's own
 * deflate stream, can compress for it).
 */
export type SocketCompression = 'none' | 'per-socket' | DeflateProfile

/** The zlib settings of ws's deflate that change the bytes it produces. */
function zlibSettings (options: PerMessageDeflateOptions): ZlibOptions {
  const zlib: ZlibOptions = {}
  const given = options.zlibDeflateOptions
  if (given?.level !== undefined) zlib.level = given.level
  if (given?.memLevel !== undefined) zlib.memLevel = given.memLevel
  if (given?.strategy !== undefined) zlib.strategy = given.strategy
  return zlib
}

/**
 * The parameters of permessage-deflate in a `Sec-WebSocket-Extensions` value, or undefined when
 * it has none. ws answers with one extension, `name; key; key=value`; quoted values are allowed.
 */
export function deflateParams (value: string): Map<string, string | true> | undefined {
  for (const extension of value.split(',')) {
    const [name, ...params] = extension.split(';')
    if (name?.trim().toLowerCase() !== 'permessage-deflate') continue
    const parsed = new Map<string, string | true>()
    for (const param of params) {
      const equals = param.indexOf('=')
      if (equals === -1) {
        parsed.set(param.trim().toLowerCase(), true)
      } else {
        parsed.set(param.slice(0, equals).trim().toLowerCase(), param.slice(equals + 1).trim().replace(/^"(.*)"$/, '$1'))
      }
    }
    return parsed
  }
  return undefined
}

/**
 * The server's compression, shared by the sockets that allow it. What a socket negotiated is not
 * public in ws (`socket.extensions` names the extension only), but the server's handshake answer
 * is: ws hands it to every `'headers'` listener, with the request, just before it writes it.
 */
export class SharedDeflate {
  readonly #threshold: number
  readonly #zlib: ZlibOptions
  /** One profile per window size, made when a socket first negotiates it. */
  readonly #profiles = new Map<number, DeflateProfile>()
  /** What each upgrade negotiated, from its handshake answer until its socket opens. */
  readonly #negotiated = new WeakMap<IncomingMessage, SocketCompression>()

  /** @param options the ws server's `perMessageDeflate` (`true` taken as `{}`) */
  constructor (options: PerMessageDeflateOptions) {
    this.#threshold = options.threshold ?? DEFAULT_THRESHOLD
    this.#zlib = zlibSettings(options)
  }

  /** The ws server's `'headers'` listener: notes what the answer to `request` negotiates. */
  readonly noteHandshake = (headers: string[], request: IncomingMessage): void => {
    for (const line of headers) {
      if (line.length <= EXTENSIONS_HEADER.length || line.slice(0, EXTENSIONS_HEADER.length).toLowerCase() !== EXTENSIONS_HEADER) continue
      const params = deflateParams(line.slice(EXTENSIONS_HEADER.length))
      if (params !== undefined) this.#negotiated.set(request, this.#compressionOf(params))
      return
    }
  }

  /** What the upgrade of `request` negotiated (once: it is forgotten after), `'per-socket'` when the answer was not seen. */
  take (request: IncomingMessage): SocketCompression {
    const negotiated = this.#negotiated.get(request) ?? 'per-socket'
    this.#negotiated.delete(request)
    return negotiated
  }

  #compressionOf (params: Map<string, string | true>): SocketCompression {
    if (params.get('server_no_context_takeover') !== true) return 'per-socket'
    const bits = params.get('server_max_window_bits')
    const windowBits = typeof bits === 'string' ? Number(bits) : DEFAULT_WINDOW_BITS
    // ws refuses other values in the offer; a malformed answer is left to ws as well.
    if (!Number.isInteger(windowBits) || windowBits < 8 || windowBits > 15) return 'per-socket'
    let profile = this.#profiles.get(windowBits)
    if (profile === undefined) {
      profile = new DeflateProfile(windowBits, this.#threshold, this.#zlib)
      this.#profiles.set(windowBits, profile)
    }
    return profile
  }
}

/**
 * How the hub writes to a socket just opened for `request`: plain frames when it negotiated no
 * compression, shared compressed frames when `shared` saw it negotiate no server context
 * takeover, ws's own `send` otherwise.
 */
export function compressionOf (socket: WebSocket, request: IncomingMessage, shared: SharedDeflate | undefined): SocketCompression {
  if (socket.extensions === '') return 'none'
  return shared?.take(request) ?? 'per-socket'
}

/**
 * The `perMessageDeflate` the hub gives ws when it registers @fastify/websocket itself:
 * `serverNoContextTakeover: true` unless the user set it, so that broadcasts compress once for
 * every socket (RFC 7692 lets the server ask for it whatever the client offered).
 */
export function withSharedDeflate (perMessageDeflate: boolean | PerMessageDeflateOptions | undefined): boolean | PerMessageDeflateOptions | undefined {
  if (perMessageDeflate === true) return { serverNoContextTakeover: true }
  if (typeof perMessageDeflate !== 'object' || perMessageDeflate === null) return perMessageDeflate
  if (perMessageDeflate.serverNoContextTakeover !== undefined) return perMessageDeflate
  return { ...perMessageDeflate, serverNoContextTakeover: true }
}
