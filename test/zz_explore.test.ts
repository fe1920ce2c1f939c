import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { rawRequest } from "./support/Http.js"
import { startTestApp } from "./support/TestApp.js"

describe("explore", () => {
  it.scopedLive("chunked", () =>
    Effect.gen(function* () {
      const app = yield* startTestApp({ MAX_BODY_BYTES: "1024", LOG_LEVEL: "debug" })
      const chunks = ["{\"title\":\"t\",\"padding\":\"", ..."x".repeat(4000).match(/.{1,500}/g) ?? [], "\"}"]
      const answer = yield* rawRequest(`${app.url}/api/projects`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        chunks
      }).pipe(Effect.timeout("5 seconds"), Effect.either)
      console.log(answer)
      expect(1).toBe(1)
    }), 60_000)
})
