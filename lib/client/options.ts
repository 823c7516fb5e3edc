import type { ClientOptions, WebSocketConstructor } from './types.ts'

/**
 * The hub's default handshake message (`WebsocketHandshakeSuccess` of lib/constants.ts), copied
 * so that the client loads no server code; a test holds the two equal.
 */
export const DEFAULT_HANDSHAKE = '{"code":2000,"msg":"ws连接成功","data":""}'

/** Options with every default filled in. */
export interface ResolvedOptions {
  readonly WebSocket: WebSocketConstructor
  /** Whether a text frame is the handshake; `undefined` when the socket's open is enough. */
  readonly handshake: ((text: string) => boolean) | undefined
  readonly initialDelay: number
  readonly maxDelay: number
  /** 0 when the client never reconnects. */
  readonly maxRetries: number
  readonly bufferSize: number
  readonly reject: boolean
  readonly requestTimeout: number
}

/** Fills in the defaults; throws when no WebSocket constructor is at hand. */
export function resolveOptions (options: ClientOptions): ResolvedOptions {
  const WebSocket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
  if (WebSocket === undefined) throw new TypeError('no global WebSocket: pass the WebSocket option (ws has one)')
  const handshake = options.handshake ?? DEFAULT_HANDSHAKE
  const reconnect = options.reconnect ?? {}
  return {
    WebSocket,
    handshake: handshake === false ? undefined : typeof handshake === 'string' ? text => text === handshake : handshake,
    initialDelay: reconnect === false ? 0 : reconnect.initialDelay ?? 500,
    maxDelay: reconnect === false ? 0 : reconnect.maxDelay ?? 30_000,
    maxRetries: reconnect === false ? 0 : reconnect.maxRetries ?? Infinity,
    bufferSize: options.bufferSize ?? 100,
    reject: options.overflow === 'reject',
    requestTimeout: options.requestTimeout ?? 10_000
  }
}
