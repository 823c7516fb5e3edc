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
