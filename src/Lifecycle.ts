import { Duration, Effect, Ref, Schedule } from "effect"

/**
 * The service's shutdown state. Draining starts on SIGTERM before anything closes, so
 * /health turns 503 and new chat messages are refused while in-flight work finishes.
 */
export class Lifecycle extends Effect.Service<Lifecycle>()("Lifecycle", {
  effect: Effect.gen(function* () {
    const draining = yield* Ref.make(false)
    const inFlight = yield* Ref.make(0)

    /** Counts `effect` as in-flight work until it ends, however it ends. */
    const track = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.acquireUseRelease(
        Ref.update(inFlight, (n) => n + 1),
        () => effect,
        () => Ref.update(inFlight, (n) => n - 1)
      )

    /** Waits until no tracked work runs, or `limit` has passed; true when idle. */
    const awaitIdle = (limit: Duration.DurationInput) =>
      Ref.get(inFlight).pipe(
        Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("50 millis") }),
        Effect.timeout(limit),
        Effect.as(true),
        Effect.catchTag("TimeoutException", () => Effect.succeed(false))
      )

    return {
      isDraining: Ref.get(draining),
      startDraining: Ref.set(draining, true),
      track,
      awaitIdle
    } as const
  })
}) {}
