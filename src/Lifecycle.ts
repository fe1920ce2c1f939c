import { Duration, Effect, Ref, Schedule } from "effect"

/** A count of running work, to wait for at shutdown. */
export interface InFlight {
  /** Counts `effect` as in flight until it ends, however it ends. */
  readonly track: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Waits until nothing is in flight, or `limit` has passed; true when idle. */
  readonly awaitIdle: (limit: Duration.DurationInput) => Effect.Effect<boolean>
}

/**
 * Polls `condition` until it holds or `limit` passes; true when it held. Interruptible on
 * purpose: shutdown finalizers run uninterruptibly, and only an interruptible wait lets
 * the time limit end it.
 */
export const pollUntil = (condition: Effect.Effect<boolean>, limit: Duration.DurationInput): Effect.Effect<boolean> =>
  condition.pipe(
    Effect.repeat({ until: (held) => held, schedule: Schedule.spaced("20 millis") }),
    Effect.interruptible,
    Effect.timeoutTo({ duration: limit, onSuccess: () => true, onTimeout: () => false })
  )

export const InFlight = {
  make: Effect.map(Ref.make(0), (count): InFlight => ({
    track: (effect) =>
      Effect.acquireUseRelease(
        Ref.update(count, (n) => n + 1),
        () => effect,
        () => Ref.update(count, (n) => n - 1)
      ),
    awaitIdle: (limit) => pollUntil(Effect.map(Ref.get(count), (n) => n === 0), limit)
  }))
}

/**
 * The service's shutdown state. Draining starts on SIGTERM before anything closes, so
 * /health turns 503 and new chat messages are refused while in-flight work finishes.
 */
export class Lifecycle extends Effect.Service<Lifecycle>()("Lifecycle", {
  effect: Effect.gen(function* () {
    const draining = yield* Ref.make(false)
    const requests = yield* InFlight.make
    return {
      isDraining: Ref.get(draining),
      startDraining: Ref.set(draining, true),
      /** HTTP requests in flight (not WebSockets: the chat service drains those). */
      track: requests.track,
      awaitIdle: requests.awaitIdle
    } as const
  })
}) {}
