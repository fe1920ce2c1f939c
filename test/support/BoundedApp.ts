/**
 * `startTestApp` with a bounded shutdown: when the test's scope closes, the service must
 * finish its graceful shutdown within SHUTDOWN_LIMIT, or the test fails (instead of the
 * whole run hanging on a finalizer that never ends). Use it with `it.scopedLive`: the
 * bound, like the service's own timeouts, needs the real clock.
 */
import { Duration, Effect, Exit, Scope } from "effect"
import { startTestApp } from "./TestApp.js"
import { freshDatabase } from "./TestDatabase.js"

/** Liveness bound only: far above the service's own shutdown grace in tests. */
export const SHUTDOWN_LIMIT = Duration.seconds(15)

export class ShutdownHung extends Error {
  constructor() {
    super(`the service did not shut down within ${Duration.format(SHUTDOWN_LIMIT)}`)
  }
}

export const startApp = (env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    // Created outside the service's scope, so it is dropped even if the shutdown hangs.
    const databaseUrl = env["DATABASE_URL"] ?? (yield* freshDatabase)
    const appScope = yield* Effect.acquireRelease(Scope.make(), (scope) =>
      // Finalizers are uninterruptible: the close runs in a fiber of its own so that the
      // bound can give up waiting for it.
      Scope.close(scope, Exit.void).pipe(
        Effect.disconnect,
        Effect.interruptible,
        Effect.timeoutFail({ duration: SHUTDOWN_LIMIT, onTimeout: () => new ShutdownHung() }),
        Effect.orDie
      )
    )
    return yield* startTestApp({ SHUTDOWN_GRACE_SECONDS: "5", ...env, DATABASE_URL: databaseUrl }).pipe(Scope.extend(appScope))
  })
