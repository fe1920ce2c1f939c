import { describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { connect } from "./support/ChatClient.js"
import { FakeRouterScoped } from "./support/FakeRouter.js"
import { newProject, startClaudeApp, storedMessages } from "./support/ChatApp.js"

describe("scratch", () => {
  it.scopedLive("midstream no delay", () =>
    Effect.gen(function* () {
      const fake = yield* FakeRouterScoped()
      const app = yield* startClaudeApp(fake, { CLAUDE_MAX_RETRIES: "0", LOG_LEVEL: "debug" })
      const project = yield* newProject(app, "x")
      const client = yield* connect(app.wsUrl, project.id)
      fake.enqueueChat({ kind: "midStreamError", chunks: ["partial"] }, { kind: "midStreamError", chunks: [] }, { kind: "midStreamError", chunks: ["a","b"], chunkDelayMs: 5 })
      yield* client.ask("one")
      yield* client.ask("two")
      yield* client.ask("three")
      console.log(client.frames.join("\n"))
      console.log(yield* storedMessages(app))
    }), 30_000)
})
