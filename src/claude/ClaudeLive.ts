import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { AppConfig } from "../Config.js"
import { Claude, type ClaudeShape } from "./Claude.js"

/** When the SDK is loaded if no request to Claude asked for it before. */
const PRELOAD_AFTER = Duration.seconds(1)

/**
 * Claude over `@anthropic-ai/sdk` (`ClaudeSdk.ts`), whose ~270 modules load at the first
 * request to Claude or PRELOAD_AFTER the layer is built, whichever comes first: loading them
 * (a fifth of the modules of a start) does not delay the service's first healthy answer. The
 * loading runs in a fiber of the layer's own, so a request that is cancelled meanwhile cannot
 * interrupt it for the others.
 */
export const ClaudeLive = (apiKey: Redacted.Redacted<string>) =>
  Layer.scoped(
    Claude,
    Effect.gen(function* () {
      const config = yield* AppConfig
      const wanted = yield* Deferred.make<void>()
      const ready = yield* Deferred.make<ClaudeShape>()
      yield* Effect.raceFirst(Deferred.await(wanted), Effect.sleep(PRELOAD_AFTER)).pipe(
        Effect.zipRight(Effect.promise(() => import("./ClaudeSdk.js"))),
        Effect.flatMap((sdk) => sdk.makeClaudeSdk(apiKey)),
        Effect.provideService(AppConfig, config),
        Effect.exit,
        Effect.flatMap((exit) => Deferred.done(ready, exit)),
        Effect.forkScoped
      )
      const loaded = Effect.zipRight(Deferred.succeed(wanted, undefined), Deferred.await(ready))
      return Claude.of({
        kind: "claude",
        stream: (request) => Stream.unwrap(Effect.map(loaded, (claude) => claude.stream(request))),
        countTokens: (request) => Effect.flatMap(loaded, (claude) => claude.countTokens(request)),
        title: (request) => Effect.flatMap(loaded, (claude) => claude.title(request))
      })
    })
  )
