/**
 * A Prometheus histogram with fixed upper bounds (in seconds). Observing is a short scan and two
 * additions, no allocation: it sits on the broadcast and message paths.
 */
export class Histogram {
  /** Upper bounds of the buckets, ascending; `+Inf` is implied. */
  readonly bounds: readonly number[]
  /** Observations per bucket (not cumulative), the last one for `+Inf`. */
  readonly counts: number[]
  /** Sum of every observed value. */
  sum = 0
  /** Number of observations. */
  count = 0

  constructor (bounds: readonly number[]) {
    this.bounds = bounds
    this.counts = new Array<number>(bounds.length + 1).fill(0)
  }

  /** Records one value (seconds). */
  observe (value: number): void {
    const bounds = this.bounds
    let index = 0
    while (index < bounds.length && value > (bounds[index] as number)) index++
    this.counts[index] = (this.counts[index] as number) + 1
    this.sum += value
    this.count++
  }
}

/**
 * Writing one broadcast to the local clients: microseconds for a few clients, milliseconds for
 * tens of thousands.
 */
export const FANOUT_BUCKETS: readonly number[] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25]

/** From a publish on another node to its delivery here: the wall clocks of two nodes, to the millisecond. */
export const DELAY_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

/** A message handler: sub-millisecond for a synchronous one, up to seconds for one that awaits a database. */
export const HANDLER_BUCKETS: readonly number[] = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
