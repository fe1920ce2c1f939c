/** Reconnect delays: exponential growth with "full jitter", so clients cut at once do not return at once. */
export interface BackoffOptions {
  /** First delay's upper bound (default 250 ms). */
  readonly initialMs?: number
  /** Cap on the upper bound (default 10 s). */
  readonly maxMs?: number
  /** Growth per failed attempt (default 2). */
  readonly factor?: number
}

/** The delay before reconnect attempt `attempt` (1-based): uniform in [upper/2, upper]. */
export const backoffDelay = (attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number => {
  const initial = options.initialMs ?? 250
  const max = options.maxMs ?? 10_000
  const upper = Math.min(max, initial * (options.factor ?? 2) ** Math.max(0, attempt - 1))
  // Half fixed, half random: never a zero delay (a tight loop), still spread out.
  return Math.round(upper / 2 + random() * (upper / 2))
}
