import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { AppConfig } from "../Config.js"
import { Claude } from "./Claude.js"

/** When the SDK is loaded if no request to Claude asked for it before. */
const PRELOAD_AFTER = Duration.seconds(1)

/**
 * Claude over `@anthropic-ai/sdk` (`ClaudeSdk.ts`), whose ~270 modules load at the first
 * request to Claude or PRELOAD_AFTER the layer is built, whichever comes first: loading them
 * (a fifth of the modules of a start) does not delay the service's first healthy answer.
 */
export const ClaudeLive = (apiKey: Redacted.Redacted<string>) =>
  Layer.scoped(
    Claude,
    Effect.gen(function* () {
      const config = yield* AppConfig
      const loaded = yield* Effect.cached(
        Effect.promise(() => import("./ClaudeSdk.js")).pipe(
          Effect.flatMap((sdk) => sdk.makeClaudeSdk(apiKey)),
          Effect.provideService(AppConfig, config)
        )
      )
      yield* Effect.forkScoped(Effect.delay(loaded, PRELOAD_AFTER))
      return Claude.of({
        kind: "claude",
        stream: (request) => Stream.unwrap(Effect.map(loaded, (claude) => claude.stream(request))),
        countTokens: (request) => Effect.flatMap(loaded, (claude) => claude.countTokens(request)),
        title: (request) => Effect.flatMap(loaded, (claude) => claude.title(request))
      })
    })
  )
