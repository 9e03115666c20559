/**
 * backoff is the delay before retry number `attempt` (0-based): exponential
 * from minMs, capped at maxMs, with "equal jitter" (a random half on top of
 * a fixed half), so a crowd of clients that lost the server together does
 * not come back together, yet none waits longer than the cap.
 */
export function backoff(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceil = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return ceil / 2 + (ceil / 2) * random();
}
