import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"

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

/**
 * The service's shutdown state. Draining starts on SIGTERM before anything closes, so
 * /health turns 503 and new chat messages are refused while in-flight work finishes.
 */
export class Lifecycle extends Effect.Service<Lifecycle>()("Lifecycle", {
  effect: Effect.gen(function* () {
    const draining = yield* Ref.make(false)
    // HTTP requests in flight (not WebSockets: the chat service drains those).
    const requests = yield* Ref.make(0)
    return {
      isDraining: Ref.get(draining),
      startDraining: Ref.set(draining, true),
      /** Counts `effect` as an in-flight request until it ends, however it ends. */
      track: <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        Effect.acquireUseRelease(
          Ref.update(requests, (n) => n + 1),
          () => effect,
          () => Ref.update(requests, (n) => n - 1)
        ),
      /** Waits until no request is in flight, or `limit` has passed; true when idle. */
      awaitIdle: (limit: Duration.DurationInput) => pollUntil(Effect.map(Ref.get(requests), (n) => n === 0), limit)
    } as const
  })
}) {}
