import { ignore } from './link.ts'
import { within } from './stall.ts'
import type { PubSub } from './transport.ts'

/** A channel this node listens to, or is about to stop listening to. */
interface Subscription {
  /** Pending until Redis confirms the subscription (or the wait is given up); undefined after. */
  ready: Promise<void> | undefined
  /** Set while the channel has no local interest: when it fires, the node unsubscribes. */
  unsubscribeTimer: NodeJS.Timeout | undefined
}

/**
 * The channels this node subscribes to: a room's while it has a local member, a client's while it
 * is connected here. A room that empties may keep its subscription a while (`linger`), so that a
 * room whose last member leaves and another joins (a page reload) costs no unsubscribe and
 * resubscribe round trips. ioredis resubscribes by itself after a reconnect.
 */
export class Subscriptions {
  readonly #pubsub: PubSub
  readonly #timeout: number
  readonly #forget: (channel: string) => void
  readonly #channels = new Map<string, Subscription>()

  /**
   * @param timeout ms `watch` waits for Redis at most (it never rejects)
   * @param forget called when a channel is given up, and when it is subscribed again, to forget
   *   what was kept for it (its sequence numbers)
   */
  constructor (pubsub: PubSub, timeout: number, forget: (channel: string) => void) {
    this.#pubsub = pubsub
    this.#timeout = timeout
    this.#forget = forget
  }

  /** Whether the node listens to a channel now (lingering ones included). */
  has (channel: string): boolean {
    return this.#channels.has(channel)
  }

  /** Channels subscribed now (lingering ones included). */
  get size (): number {
    return this.#channels.size
  }

  /**
   * Listens to a channel (again). Resolves once Redis has confirmed the subscription, so that what
   * is published after that reaches this node; undefined when that is already so. When Redis is
   * down or slow it resolves after the timeout anyway: the subscription then comes with the link.
   */
  watch (channel: string): Promise<void> | undefined {
    const known = this.#channels.get(channel)
    if (known !== undefined) {
      clearTimeout(known.unsubscribeTimer)
      known.unsubscribeTimer = undefined
      return known.ready
    }
    const subscription: Subscription = { ready: undefined, unsubscribeTimer: undefined }
    this.#channels.set(channel, subscription)
    // Through a promise: ioredis's cluster client can throw at once (no master for the slot yet).
    const subscribed = Promise.resolve().then(() => this.#pubsub.subscribe(channel)).then(() => {
      // What came before the confirmation was from before: numbers count from the next one.
      this.#forget(channel)
    })
    const ready = within(subscribed, this.#timeout).then(ignore, ignore).finally(() => {
      if (subscription.ready === ready) subscription.ready = undefined
    })
    subscription.ready = ready
    return ready
  }

  /**
   * The channel has lost its last local interest: it is given up after `linger` ms, unless
   * watched again meanwhile.
   */
  unwatch (channel: string, linger: number): void {
    const subscription = this.#channels.get(channel)
    if (subscription === undefined || subscription.unsubscribeTimer !== undefined) return
    if (linger === 0) {
      this.#unsubscribe(channel)
      return
    }
    subscription.unsubscribeTimer = setTimeout(() => this.#unsubscribe(channel), linger).unref()
  }

  #unsubscribe (channel: string): void {
    this.#channels.delete(channel)
    // Fails only when the link is down; the resubscription after a reconnect no longer includes it.
    Promise.resolve().then(() => this.#pubsub.unsubscribe(channel)).catch(ignore)
    this.#forget(channel)
  }

  /** Cancels the pending unsubscribes (at close, when the connection goes anyway). */
  clear (): void {
    for (const subscription of this.#channels.values()) clearTimeout(subscription.unsubscribeTimer)
    this.#channels.clear()
  }
}
