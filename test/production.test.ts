import { beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import WebSocket from "ws"
import { FakeAnthropicScoped } from "./support/FakeAnthropic.js"
import { awaitExit, awaitHealthy, PROJECT_ROOT, spawnService } from "./support/ServiceProcess.js"
import { freshDatabase } from "./support/TestDatabase.js"

/**
 * The production path exactly as the image runs it: compiled JavaScript (`node
 * dist/main.js`), NODE_ENV=production, a real PostgreSQL and (the fake) Anthropic API.
 */
const API_KEY = "sk-ant-prod-test-7f3a9c"

const runCompiled = (env: Record<string, string>) => spawnService({ NODE_ENV: "production", ...env }, { entry: "compiled" })

const chatTurn = (wsUrl: string, projectId: string) =>
  Effect.promise(
    () =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const socket = new WebSocket(`${wsUrl}/ws/chat?projectId=${projectId}`)
        socket.on("open", () => socket.send(JSON.stringify({ type: "chat_message", content: "Build me an inventory tracker" })))
        socket.on("message", (data: Buffer) => {
          const event = JSON.parse(data.toString("utf8")) as Record<string, unknown>
          if (event["type"] === "message_complete" || event["type"] === "error") {
            socket.close()
            resolve(event)
          }
        })
        socket.on("error", reject)
      })
  )

describe("the production build", () => {
  // The image's build step: TypeScript compiled to dist/.
  beforeAll(() => promisify(execFile)("npm", ["run", "build"], { cwd: PROJECT_ROOT }), 120_000)

  it.live("compiles and serves REST and chat with NODE_ENV=production, then stops on SIGTERM with exit 0", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const fake = yield* FakeAnthropicScoped
        fake.setDefault({ kind: "text", chunks: ["Here it is:\n", "```python\nitems = []\n```\n"] })
        const databaseUrl = yield* freshDatabase
        const run = yield* runCompiled({ DATABASE_URL: databaseUrl, CLAUDE_API_KEY: API_KEY, CLAUDE_BASE_URL: fake.url })
        const health = yield* awaitHealthy(run)
        expect(health).toMatchObject({ status: "healthy", database: "connected", model: "claude" })
        const project = yield* Effect.promise(() =>
          fetch(`${run.url}/api/projects`, { method: "POST" }).then((r) => r.json() as Promise<{ id: string }>)
        )
        const complete = yield* chatTurn(run.wsUrl, project.id)
        expect(complete).toMatchObject({ type: "message_complete", status: "complete", codeBlocks: [{ language: "python" }] })
        expect(fake.requests.some((request) => request.headers["authorization"] === `Bearer ${API_KEY}` || request.headers["x-api-key"] === API_KEY)).toBe(true)
        run.signal("SIGTERM")
        expect((yield* awaitExit(run)).code).toBe(0)
        expect(run.output()).not.toContain(API_KEY)
        for (const line of run.output().trim().split("\n")) expect(() => JSON.parse(line)).not.toThrow()
      })
    ), 120_000)

  it.live("refuses to start in production without DATABASE_URL and CLAUDE_API_KEY, naming both in one line", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const run = yield* runCompiled({})
        expect((yield* awaitExit(run)).code).toBe(1)
        const lines = run.output().trim().split("\n")
        expect(lines).toHaveLength(1)
        const entry = JSON.parse(lines[0] ?? "{}") as { level: string; message: string }
        expect(entry.level).toBe("error")
        expect(entry.message).toContain("DATABASE_URL")
        expect(entry.message).toContain("CLAUDE_API_KEY")
      })
    ), 60_000)
})
