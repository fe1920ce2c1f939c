/**
 * The shutdown bookkeeping behind SHUTDOWN_GRACE_SECONDS: in-flight work is waited for,
 * but never longer than the grace period, even from a finalizer (where shutdown runs, and
 * where Effect makes everything uninterruptible).
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { Lifecycle } from "../src/Lifecycle.js"

/** Liveness bound for the test itself, far above the limits under test. */
const bounded = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.disconnect,
    Effect.interruptible,
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("awaitIdle did not return within 10 s") })
  )

/** Starts `work` as tracked in-flight work and waits until it is counted. */
const startTracked = (lifecycle: Lifecycle, work: Effect.Effect<void>) =>
  Effect.gen(function* () {
    const started = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(lifecycle.track(Deferred.succeed(started, undefined).pipe(Effect.zipRight(work))))
    yield* Deferred.await(started)
    return fiber
  })

describe("Lifecycle", () => {
  it.live("reports idle once the tracked work has finished", () =>
    Effect.gen(function* () {
      const lifecycle = yield* Lifecycle
      const release = yield* Deferred.make<void>()
      yield* startTracked(lifecycle, Deferred.await(release))
      yield* Deferred.succeed(release, undefined)
      expect(yield* bounded(lifecycle.awaitIdle("5 seconds"))).toBe(true)
    }).pipe(Effect.provide(Lifecycle.Default)))

  it.live("gives up after the limit while work is still in flight", () =>
    Effect.gen(function* () {
      const lifecycle = yield* Lifecycle
      yield* startTracked(lifecycle, Effect.never)
      expect(yield* bounded(lifecycle.awaitIdle("200 millis"))).toBe(false)
    }).pipe(Effect.provide(Lifecycle.Default)))

  // Exposes a bug in src (see the report): the shutdown finalizer calls awaitIdle, and in an
  // uninterruptible region `Effect.timeoutTo` cannot interrupt the polling loop, so a request
  // that never ends keeps the service from ever shutting down, whatever the grace period.
  it.live("gives up after the limit even when called from a finalizer, as at shutdown", () =>
    Effect.gen(function* () {
      const lifecycle = yield* Lifecycle
      yield* startTracked(lifecycle, Effect.never)
      expect(yield* bounded(Effect.uninterruptible(lifecycle.awaitIdle("200 millis")))).toBe(false)
    }).pipe(Effect.provide(Lifecycle.Default)))
})
