import { randomBytes } from 'node:crypto'
import net from 'node:net'

/** The parts of a client frame that a hostile client may get wrong on purpose. */
export interface FrameOptions {
  /** Opcode: 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong. */
  opcode: number
  payload?: Buffer | string
  /** FIN bit; default true. */
  fin?: boolean
  /** RSV1..3 as the three bits 0b100, 0b010, 0b001; default 0. */
  rsv?: number
  /** Clients must mask (RFC 6455 5.3); false builds the unmasked frame a server must refuse. */
  mask?: boolean
}

/** Builds one client frame by hand, so tests can send what no client library would. */
export function frame (options: FrameOptions): Buffer {
  const payload = typeof options.payload === 'string' ? Buffer.from(options.payload) : options.payload ?? Buffer.alloc(0)
  const masked = options.mask !== false
  const length = payload.length
  const lengthBytes = length < 126 ? 0 : length < 65_536 ? 2 : 8
  const head = Buffer.alloc(2 + lengthBytes + (masked ? 4 : 0))
  head[0] = (options.fin === false ? 0 : 0x80) | ((options.rsv ?? 0) << 4) | options.opcode
  head[1] = (masked ? 0x80 : 0) | (lengthBytes === 0 ? length : lengthBytes === 2 ? 126 : 127)
  if (lengthBytes === 2) head.writeUInt16BE(length, 2)
  if (lengthBytes === 8) head.writeBigUInt64BE(BigInt(length), 2)
  if (!masked) return Buffer.concat([head, payload])
  const key = randomBytes(4)
  key.copy(head, 2 + lengthBytes)
  const body = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) body[i] = (payload[i] as number) ^ (key[i & 3] as number)
  return Buffer.concat([head, body])
}

/** A text frame, masked. */
export function textFrame (text: string | Buffer, fin = true): Buffer {
  return frame({ opcode: 1, payload: text, fin })
}

/** A close frame with a code, masked. */
export function closeFrame (code = 1000): Buffer {
  const payload = Buffer.alloc(2)
  payload.writeUInt16BE(code)
  return frame({ opcode: 8, payload })
}

/**
 * The bytes of an upgrade request (`headers.Host` replaces the default host); `extra` lines go
 * between the headers and the blank line.
 */
export function upgradeRequest (path: string, host: string, headers: Record<string, string> = {}, extra: string[] = []): string {
  const { Host: hostHeader, ...others } = headers
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: ${hostHeader ?? host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...Object.entries(others).map(([name, value]) => `${name}: ${value}`),
    ...extra
  ]
  return lines.join('\r\n') + '\r\n\r\n'
}

/** A frame the server sent (servers never mask). */
export interface ServerFrame {
  fin: boolean
  opcode: number
  payload: Buffer
}

/** How the connection ended: the close frame's code, or 1006 when the TCP socket ended without one. */
export interface RawClose {
  code: number
  reason: string
  /** Milliseconds from `RawClient.mark()` (or from the upgrade) to the close frame or the socket's end. */
  elapsed: number
}

/**
 * A websocket client on a bare TCP socket: it writes whatever bytes a test gives it and parses
 * what the server answers (HTTP status first, then frames). It never answers pings; it answers a
 * close frame (as any client does) unless `answerClose` is turned off.
 */
export class RawClient {
  readonly socket: net.Socket
  /** Echo the server's close frame and end the socket, completing the close handshake. */
  answerClose = true
  /** HTTP status of the upgrade response (101 when upgraded). */
  status = 0
  /** The raw HTTP response head. */
  head = ''
  readonly frames: ServerFrame[] = []
  /** Resolves once the upgrade response head has arrived. */
  readonly response: Promise<number>
  /** Resolves on the server's close frame, or on the socket's end (code 1006). Never rejects. */
  readonly closed: Promise<RawClose>
  #buffer: Buffer = Buffer.alloc(0)
  #upgraded = false
  #markedAt = Date.now()
  #close: RawClose | undefined
  #resolveClose!: (close: RawClose) => void
  #resolveResponse!: (status: number) => void
  #waiters: Array<() => void> = []

  constructor (socket: net.Socket) {
    this.socket = socket
    this.response = new Promise(resolve => { this.#resolveResponse = resolve })
    this.closed = new Promise(resolve => { this.#resolveClose = resolve })
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    socket.on('error', () => {})
    socket.on('close', () => {
      this.#resolveResponse(this.status)
      this.#finish(1006, '')
    })
  }

  /**
   * Opens a TCP connection to 127.0.0.1 and writes an upgrade request (or `request` as given).
   * Resolves once connected; await `response` for the status.
   */
  static async open (port: number, path = '/ws', headers: Record<string, string> = {}, request?: string): Promise<RawClient> {
    const socket = net.connect({ port, host: '127.0.0.1' })
    const client = new RawClient(socket)
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    socket.write(request ?? upgradeRequest(path, `127.0.0.1:${port}`, headers))
    return client
  }

  /** Opens and waits for the upgrade; throws unless the server answered 101. */
  static async upgrade (port: number, path = '/ws', headers: Record<string, string> = {}): Promise<RawClient> {
    const client = await RawClient.open(port, path, headers)
    const status = await client.response
    if (status !== 101) throw new Error(`upgrade refused with ${status}: ${client.head}`)
    return client
  }

  /** Restarts the clock that `closed.elapsed` is measured from. */
  mark (): void {
    this.#markedAt = Date.now()
  }

  write (bytes: Buffer | string): boolean {
    return this.socket.write(bytes)
  }

  /** Resolves once the server has sent `count` data frames (text or binary). */
  async dataFrames (count: number, timeoutMs = 2000): Promise<ServerFrame[]> {
    await this.until(() => this.#data().length >= count, timeoutMs, `${count} data frames`)
    return this.#data()
  }

  /** Waits until a condition about this client holds; rejects after `timeoutMs`. */
  async until (condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!condition()) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`raw client: timed out waiting for ${what}`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, left)
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  /** Destroys the TCP socket. */
  destroy (): void {
    this.socket.destroy()
  }

  #data (): ServerFrame[] {
    return this.frames.filter(f => f.opcode === 1 || f.opcode === 2)
  }

  #onData (chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
    if (!this.#upgraded) {
      const end = this.#buffer.indexOf('\r\n\r\n')
      if (end === -1) return
      this.head = this.#buffer.subarray(0, end).toString('latin1')
      this.status = Number(/^HTTP\/1\.1 (\d{3})/.exec(this.head)?.[1] ?? 0)
      this.#buffer = this.#buffer.subarray(end + 4)
      this.#upgraded = this.status === 101
      this.#markedAt = Date.now()
      this.#resolveResponse(this.status)
      if (!this.#upgraded) return
    }
    this.#parseFrames()
    for (const wake of this.#waiters.splice(0)) wake()
  }

  #parseFrames (): void {
    for (;;) {
      const buffer = this.#buffer
      if (buffer.length < 2) return
      const first = buffer[0] as number
      let length = (buffer[1] as number) & 0x7f
      let offset = 2
      if (length === 126) {
        if (buffer.length < 4) return
        length = buffer.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (buffer.length < 10) return
        length = Number(buffer.readBigUInt64BE(2))
        offset = 10
      }
      if (buffer.length < offset + length) return
      const payload = buffer.subarray(offset, offset + length)
      this.#buffer = buffer.subarray(offset + length)
      const opcode = first & 0x0f
      this.frames.push({ fin: (first & 0x80) !== 0, opcode, payload })
      if (opcode === 8) {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005
        this.#finish(code, payload.subarray(2).toString('utf8'))
        if (this.answerClose && this.socket.writable) this.socket.end(closeFrame(code === 1005 ? 1000 : code))
      }
    }
  }

  #finish (code: number, reason: string): void {
    if (this.#close !== undefined) return
    this.#close = { code, reason, elapsed: Date.now() - this.#markedAt }
    this.#resolveClose(this.#close)
    for (const wake of this.#waiters.splice(0)) wake()
  }
}

/** Memory figures in MiB, rounded to a tenth. */
export function mib (bytes: number): number {
  return Math.round(bytes / 1024 / 102.4) / 10
}

/** A tiny seeded PRNG (Marsaglia's xorshift32): the same seed gives the same sequence on every run. */
export function prng (seed: number): () => number {
  let state = (seed >>> 0) || 1
  return () => {
    state ^= state << 13
    state >>>= 0
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    return state / 4294967296
  }
}
