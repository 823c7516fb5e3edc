import { backoffDelay } from './backoff.ts'
import { HubClientError } from './errors.ts'
import { resolveOptions, type ResolvedOptions } from './options.ts'
import { Requests } from './requests.ts'
import { SendBuffer, type Queued } from './send-buffer.ts'
import type { ClientOptions, ClientSession, ClientSocket, ClientStatus, HubClient, RawData, RequestOptions, Unsubscribe } from './types.ts'
import { encodeMessage, readFrame, readPosition, resumeUrl, type Position } from './wire.ts'

/** `WebSocket.OPEN`, which a socket constructor from `ws` has only on the class. */
const OPEN = 1

/**
 * Close codes after which the client does not come back: 1008 (policy violation: the hub refused
 * it) and 4000-4099, the range the hub's applications use to say "do not reconnect".
 */
function isFinalCode (code: number): boolean {
  // 1000: the server ended the connection on purpose (a normal close is not an abnormal one)
  return code === 1000 || code === 1008 || (code >= 4000 && code <= 4099)
}

type Listener = (value: never) => void

/** The client behind `createClient`, typed loosely inside; `HubClient<Route>` types it outside. */
class Connection {
  status: ClientStatus = 'connecting'
  /** The last `$session` told: undefined before the first one and once closed. */
  session: ClientSession | undefined
  /** The token of the session to resume on the next connection; undefined when there is none. */
  #token: string | undefined
  /** The last position seen in each stream, for `$resume`. */
  readonly #positions = new Map<string, Position>()
  /** This connection presented a session and has not been told its outcome yet. */
  #resuming = false
  readonly #url: string
  readonly #options: ResolvedOptions
  readonly #listeners = new Map<string, Set<Listener>>()
  readonly #buffer: SendBuffer
  readonly #requests = new Requests()
  #socket: ClientSocket | undefined
  #timer: ReturnType<typeof setTimeout> | undefined
  /** Reconnection attempts since the last open. */
  #attempt = 0

  constructor (url: string, options: ClientOptions) {
    this.#url = url
    this.#options = resolveOptions(options)
    this.#buffer = new SendBuffer(this.#options.bufferSize, this.#options.reject)
    this.#connect()
  }

  get dropped (): number {
    return this.#buffer.dropped
  }

  on (type: string, listener: Listener): Unsubscribe {
    let set = this.#listeners.get(type)
    if (set === undefined) this.#listeners.set(type, set = new Set())
    set.add(listener)
    return () => { set.delete(listener) }
  }

  send (typeOrData: RawData, data?: unknown): void {
    this.#write({ frame: typeof typeOrData === 'string' && arguments.length > 1 ? encodeMessage(typeOrData, data) : typeOrData })
  }

  request (type: string, data: unknown, options: RequestOptions = {}): Promise<unknown> {
    if (this.status === 'closed') return Promise.reject(closedError())
    const { id, reply } = this.#requests.start(options.timeout ?? this.#options.requestTimeout, id => this.#buffer.remove(id))
    try {
      this.#write({ frame: encodeMessage(type, data, id), id })
    } catch (error) {
      this.#requests.fail(id, error as HubClientError)
    }
    return reply
  }

  close (code = 1000, reason?: string): void {
    if (this.status === 'closed') return
    const socket = this.#socket
    this.#socket = undefined
    socket?.close(code, reason)
    this.#end()
  }

  /** Writes a frame now when open, or queues it; a request it pushes out of the queue fails. */
  #write (item: Queued): void {
    if (this.status === 'closed') throw closedError()
    if (this.status === 'open' && this.#socket?.readyState === OPEN) {
      this.#socket.send(item.frame)
      if (item.id !== undefined) this.#requests.sent(item.id)
      return
    }
    const dropped = this.#buffer.push(item)
    if (dropped?.id !== undefined) this.#requests.fail(dropped.id, new HubClientError('overflow', 'dropped from the full send buffer'))
  }

  #connect (): void {
    this.#timer = undefined
    // A session told on an earlier connection is resumed: the URL says so, and the first frame
    // (before anything buffered, which waits for the handshake) carries the token and positions
    const resume = this.#token === undefined
      ? undefined
      : encodeMessage('$resume', { id: this.session?.id, token: this.#token, positions: Object.fromEntries(this.#positions) })
    this.#resuming = resume !== undefined
    let socket: ClientSocket
    try {
      socket = new this.#options.WebSocket(resume === undefined ? this.#url : resumeUrl(this.#url))
    } catch {
      // An unusable URL or a refused constructor is a failed connect like any other
      this.#disconnected(1006)
      return
    }
    this.#socket = socket
    socket.binaryType = 'arraybuffer'
    let connected = false
    // A listener must stay: `ws` throws an 'error' event that has none. An error before the socket
    // opened is a failed connect: browsers and ws follow it with a close event, but Node 22's
    // built-in WebSocket does not (it stays CONNECTING), so the failure is handled here and the
    // late close, if any, is ignored (the socket is no longer the current one).
    socket.onerror = () => {
      if (connected || socket !== this.#socket) return
      this.#disconnected(1006)
      try {
        socket.close()
      } catch {}
    }
    socket.onopen = () => {
      connected = true
      if (resume !== undefined) socket.send(resume)
      if (this.#options.handshake === undefined) this.#opened()
    }
    socket.onmessage = ({ data }) => {
      if (socket === this.#socket) this.#receive(data as string | ArrayBuffer)
    }
    socket.onclose = ({ code }) => {
      if (socket === this.#socket) this.#disconnected(code)
    }
  }

  #opened (): void {
    this.#attempt = 0
    this.status = 'open'
    // Queued frames go first, before any status listener can send
    for (const item of this.#buffer.drain()) {
      if (item.id === undefined || this.#requests.has(item.id)) this.#write(item)
    }
    this.#emit('status', 'open')
  }

  #receive (data: string | ArrayBuffer): void {
    if (typeof data !== 'string') return this.#emit('message', data)
    if (this.status !== 'open' && this.#options.handshake?.(data) === true) return this.#opened()
    const frame = readFrame(data)
    if (frame === undefined) return this.#emit('message', data)
    const { type, id, error } = frame
    if (type === '$session') return this.#newSession(frame.data)
    // The position is kept before any listener runs, so that a listener sees it up to date
    const position = readPosition(frame.pos)
    if (position !== undefined) this.#positions.set(...position)
    // A position alone: an event of that stream reached this client another way (another room)
    if (type === '$pos') return
    if (type === 'error') {
      const failure = new HubClientError(String(error?.code), String(error?.message))
      if (typeof id !== 'number' || !this.#requests.fail(id, failure)) this.#emit('error', failure)
      return
    }
    if (typeof id === 'number' && this.#requests.resolve(id, frame.data)) return
    if (this.#listeners.get(type)?.size) return this.#emit(type, frame.data)
    this.#emit('message', data)
  }

  /** A `$session` frame: the session to resume next time; a fresh one drops the old positions. */
  #newSession (data: unknown): void {
    const { id, token, recovered, streams } = (data ?? {}) as { id?: unknown, token?: unknown, recovered?: unknown, streams?: unknown }
    if (typeof id !== 'string' || typeof token !== 'string') return
    this.#resuming = false
    if (recovered !== true) this.#positions.clear()
    // Streams of rooms left since are forgotten: the resume frame holds the session's streams only
    if (Array.isArray(streams)) {
      for (const stream of [...this.#positions.keys()]) if (!streams.includes(stream)) this.#positions.delete(stream)
    }
    this.#token = token
    this.session = { id, recovered: recovered === true }
    this.#emit('session', this.session)
  }

  #disconnected (code: number): void {
    this.#socket = undefined
    // A resume frame the hub refused as too big: the next connection starts a fresh session
    if (this.#resuming && code === 1009) this.#token = this.session = undefined
    this.#resuming = false
    this.#requests.close(false)
    if (isFinalCode(code) || this.#attempt >= this.#options.maxRetries) return this.#end()
    const delay = backoffDelay(this.#attempt++, this.#options.initialDelay, this.#options.maxDelay)
    this.#timer = setTimeout(() => this.#connect(), delay)
    this.#setStatus('reconnecting')
  }

  /** Closes for good: nothing waits any longer, and the session is forgotten. */
  #end (): void {
    clearTimeout(this.#timer)
    this.#token = this.session = undefined
    this.#positions.clear()
    this.#buffer.drain()
    this.#requests.close(true)
    this.#setStatus('closed')
  }

  #setStatus (status: ClientStatus): void {
    if (status === this.status) return
    this.status = status
    this.#emit('status', status)
  }

  #emit (type: string, value: unknown): void {
    for (const listener of this.#listeners.get(type) ?? []) {
      try {
        (listener as (value: unknown) => void)(value)
      } catch (error) {
        // A failing listener must not stop the others nor the client's own bookkeeping: rethrown apart
        setTimeout(() => { throw error })
      }
    }
  }
}

function closedError (): HubClientError {
  return new HubClientError('closed', 'client closed')
}

/**
 * Connects to a hub route and keeps connecting: typed from the route's definition with
 * `createClient<typeof chatRoute>(url)`, untyped with `createClient(url)`.
 */
export function createClient<Route = unknown> (url: string, options: ClientOptions = {}): HubClient<Route> {
  return new Connection(url, options) as unknown as HubClient<Route>
}
