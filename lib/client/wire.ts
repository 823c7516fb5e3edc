/**
 * The client's side of the typed wire format (README "Typed messages"): building message frames
 * and recognising replies, error frames and events among incoming text.
 */

/** An incoming typed frame. */
export interface Frame {
  readonly type: string
  readonly id?: unknown
  readonly data?: unknown
  readonly error?: { readonly code?: unknown, readonly message?: unknown }
  /** Stream position of an event on a recovery route: `[stream, epoch, offset]`. */
  readonly pos?: unknown
}

/** The last place seen in one stream: `[epoch, offset]`, as a `$resume` frame carries it. */
export type Position = [epoch: string, offset: number]

/** The stream and position of a valid `pos`, or `undefined` for a missing or malformed one. */
export function readPosition (pos: unknown): [stream: string, position: Position] | undefined {
  if (!Array.isArray(pos) || pos.length !== 3) return undefined
  const [stream, epoch, offset] = pos as unknown[]
  return typeof stream === 'string' && typeof epoch === 'string' && Number.isSafeInteger(offset) && (offset as number) >= 0
    ? [stream, [epoch, offset as number]]
    : undefined
}

/** The URL of a resuming connection: `url` with the query flag `_resume=1`, before any fragment. */
export function resumeUrl (url: string): string {
  const hash = url.indexOf('#')
  const base = hash < 0 ? url : url.slice(0, hash)
  const separator = /[?&]$/.test(base) ? '' : base.includes('?') ? '&' : '?'
  return base + separator + '_resume=1' + (hash < 0 ? '' : url.slice(hash))
}

/** A message frame `{"type","data","id"?}`. */
export function encodeMessage (type: string, data: unknown, id?: number): string {
  return JSON.stringify({ type, data, id })
}

/** The typed frame a text holds, or `undefined` for any other text (delivered as raw). */
export function readFrame (text: string): Frame | undefined {
  // Cheap test first: most raw frames of untyped routes are not JSON objects
  if (text[0] !== '{') return undefined
  try {
    const frame = JSON.parse(text) as unknown
    return typeof (frame as Frame).type === 'string' ? frame as Frame : undefined
  } catch {
    return undefined
  }
}
