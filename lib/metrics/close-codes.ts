/**
 * The label of a close code in `connections_closed_total`. Codes of RFC 6455 and the IANA registry
 * (1000-1015) are few and each means something: they keep their number. Codes 3000-4999 are the
 * applications' and the peer may put any of them in its close frame (and echo any of them back to
 * a close the server began), so a client could mint 2000 series: they fold into `3xxx` and `4xxx`.
 * Anything else (ws refuses other codes on the wire) is `other`. At most 19 series, whatever peers send.
 */
export function closeCodeLabel (code: number): string {
  if (code >= 1000 && code <= 1015) return String(code)
  if (code >= 3000 && code <= 3999) return '3xxx'
  if (code >= 4000 && code <= 4999) return '4xxx'
  return 'other'
}

/** Connections opened, and closed by close code: kept by the hub whether metrics are on or not (a few additions per connection). */
export class ConnectionCounts {
  /** Clients opened (registered in the hub and greeted). */
  opened = 0
  /** Clients whose close is final, by the label of their close code (see `closeCodeLabel`). */
  readonly closed = new Map<string, number>()

  /** Notes the close of one client with the code its `onClose` gets. */
  close (code: number): void {
    const label = closeCodeLabel(code)
    this.closed.set(label, (this.closed.get(label) ?? 0) + 1)
  }
}
