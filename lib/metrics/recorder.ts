import { DELAY_BUCKETS, FANOUT_BUCKETS, HANDLER_BUCKETS, Histogram } from './histogram.ts'

/**
 * The label of handler durations for handlers that have no message type: `onMessage` of an
 * untyped route, and of a typed route for its binary frames. It names the hook that ran.
 */
export const UNTYPED_HANDLER = 'onMessage'

/** The histograms of a hub with the `metrics` option; the hub observes into them as things happen. */
export class HubMetrics {
  /** Seconds to write one broadcast to this node's clients (its own broadcasts and other nodes'). */
  readonly fanOut = new Histogram(FANOUT_BUCKETS)
  /** Seconds from a broadcast's publish on another node to its delivery here (adapters that tell the publish time). */
  readonly deliveryDelay = new Histogram(DELAY_BUCKETS)
  /** Seconds handlers took, by message type; the types are the routes' declared ones, so the map stays small. */
  readonly handlers = new Map<string, Histogram>()

  /** Records one handler's duration under its message type. */
  observeHandler (type: string, seconds: number): void {
    let histogram = this.handlers.get(type)
    if (histogram === undefined) {
      histogram = new Histogram(HANDLER_BUCKETS)
      this.handlers.set(type, histogram)
    }
    histogram.observe(seconds)
  }
}
