import type { IncomingMessage } from 'node:http'

/** Entries the table holds before it starts over: a bound, whatever strings peers send. */
const MAX_ENTRIES = 1024
/** Longer strings are left as they are: the table's memory stays small. */
const MAX_LENGTH = 256
/**
 * Headers whose values repeat from one connection to the next, the only values shared. A list of
 * what repeats rather than of what does not: any other header may carry a token (an API key, a
 * subprotocol used for auth), which must not outlive its connection in a table of the process.
 */
const REPEATED_VALUES = new Set([
  'host', 'connection', 'upgrade', 'origin', 'user-agent', 'pragma', 'cache-control',
  'accept-encoding', 'accept-language', 'sec-websocket-version', 'sec-websocket-extensions'
])

const canonical = new Map<string, string>()

/**
 * The one copy of a string that the table keeps, or the string itself (now kept) when it is new.
 * Equal strings cannot be told apart, so handing out one copy changes nothing but memory.
 */
function shared (text: string): string {
  const known = canonical.get(text)
  if (known !== undefined) return known
  if (text.length > MAX_LENGTH) return text
  // Starting over keeps the table bounded; the copies already handed out stay shared.
  if (canonical.size >= MAX_ENTRIES) canonical.clear()
  canonical.set(text, text)
  return text
}

/**
 * Makes an upgrade request that a client keeps for its whole life hold one shared copy of each
 * header name and of each value of the headers that connections repeat (`Host`, `Upgrade`, a
 * browser's `User-Agent`...), instead of the copies its HTTP parser made: about 300 bytes per connection
 * with a handful of headers, more with a browser's.
 */
export function shareHeaderStrings (raw: IncomingMessage): void {
  // A request made up by @fastify/websocket's injectWS is a plain object: none of it is taken as given.
  const rawHeaders: unknown[] = Array.isArray(raw.rawHeaders) ? raw.rawHeaders : []
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    const name = rawHeaders[index]
    const value = rawHeaders[index + 1]
    if (typeof name !== 'string' || typeof value !== 'string') continue
    rawHeaders[index] = shared(name)
    if (REPEATED_VALUES.has(name.toLowerCase())) rawHeaders[index + 1] = shared(value)
  }
  // The parsed headers hold the same value strings: point them at the shared copies too.
  const headers = raw.headers as Record<string, unknown> | undefined
  for (const name in headers) {
    const value = headers[name]
    if (typeof value === 'string' && REPEATED_VALUES.has(name)) headers[name] = shared(value)
  }
  if (typeof raw.httpVersion === 'string') raw.httpVersion = shared(raw.httpVersion)
  if (typeof raw.url === 'string') raw.url = shared(raw.url)
}
