/**
 * Delay before reconnection attempt `attempt` (0 for the first): exponential backoff with full
 * jitter, a random point in [0, min(maxDelay, initialDelay * 2^attempt)], so that clients dropped
 * together by one server do not all come back in the same instant.
 */
export function backoffDelay (attempt: number, initialDelay: number, maxDelay: number, random: () => number = Math.random): number {
  return random() * Math.min(maxDelay, initialDelay * 2 ** attempt)
}
