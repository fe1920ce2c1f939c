import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { startTestApp } from "./support/TestApp.js"

describe("smoke", () => {
  it.scoped("creates and lists a project", () =>
    Effect.gen(function* () {
      const app = yield* startTestApp()
      const created = yield* Effect.promise(() =>
        fetch(`${app.url}/api/projects`, { method: "POST", body: JSON.stringify({ title: "A" }), headers: { "content-type": "application/json" } }).then((r) => r.json())
      )
      const list = yield* Effect.promise(() => fetch(`${app.url}/api/projects`).then((r) => r.json()))
      expect(list).toEqual({ projects: [{ ...(created as object), messageCount: 0 }] })
    }))
})
