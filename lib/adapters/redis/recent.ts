/**
 * The multi-room broadcasts this node delivered lately, so that the copies that come on the
 * channels of its other rooms are not delivered again. A broadcast to rooms A and B is published
 * on both channels; a node with members in both gets it twice, and delivers the first to come.
 * Ids are kept for `window` ms after they came (between one and two windows), which covers every
 * later copy that is still on time (later ones are dropped as late anyway).
 */
export class RecentBroadcasts {
  readonly #window: number
  #current = new Set<string>()
  #previous = new Set<string>()
  #periodStart = Date.now()

  /** @param window ms an id is remembered at least */
  constructor (window: number) {
    this.#window = window
  }

  /**
   * Notes a broadcast's id.
   * @returns false when it was noted already: a copy, not to be delivered again
   */
  firstTime (id: string): boolean {
    this.#age()
    if (this.#current.has(id) || this.#previous.has(id)) return false
    this.#current.add(id)
    return true
  }

  /** Ids remembered now. */
  get size (): number {
    return this.#current.size + this.#previous.size
  }

  #age (): void {
    const now = Date.now()
    if (now - this.#periodStart < this.#window) return
    // Two windows or more since the last id came: the current ones are old enough to go too.
    this.#previous = now - this.#periodStart >= 2 * this.#window ? new Set() : this.#current
    this.#current = new Set()
    this.#periodStart = now
  }
}
