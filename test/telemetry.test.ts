import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import WebSocket from "ws"
import { FakeAnthropicScoped } from "./support/FakeAnthropic.js"
import { OtlpReceiver } from "./support/OtlpReceiver.js"
import { startTestApp } from "./support/TestApp.js"

const createProject = (url: string) =>
  Effect.promise(() =>
    fetch(`${url}/api/projects`, { method: "POST", headers: { "x-request-id": "trace-me-1" } }).then(
      async (response) => ({ id: ((await response.json()) as { id: string }).id, requestId: response.headers.get("x-request-id") })
    )
  )

/** Sends one chat message and resolves when its answer is complete. */
const chatTurn = (wsUrl: string, projectId: string) =>
  Effect.promise(
    () =>
      new Promise<void>((resolve, reject) => {
        const socket = new WebSocket(`${wsUrl}/ws/chat?projectId=${projectId}`)
        socket.on("open", () => socket.send(JSON.stringify({ type: "chat_message", content: "Build me a todo list" })))
        socket.on("message", (data: Buffer) => {
          const event = JSON.parse(data.toString("utf8")) as { type: string }
          if (event.type === "message_complete") {
            socket.close()
            resolve()
          }
          if (event.type === "error") reject(new Error(data.toString("utf8")))
        })
        socket.on("error", reject)
      })
  )

describe("telemetry", () => {
  it.scoped("exports spans for requests, chat answers, Claude calls and SQL queries when OTEL_EXPORTER_OTLP_ENDPOINT is set", () =>
    Effect.gen(function* () {
      const receiver = yield* OtlpReceiver
      const fake = yield* FakeAnthropicScoped
      fake.setDefault({ kind: "text", chunks: ["Here ", "you go:\n```python\nprint(1)\n```"], inputTokens: 42, outputTokens: 7 })
      // The app runs in its own scope: closing it flushes the batched spans.
      const requestId = yield* Effect.scoped(
        Effect.gen(function* () {
          const app = yield* startTestApp({
            OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
            CLAUDE_API_KEY: "sk-ant-test-key",
            CLAUDE_BASE_URL: fake.url
          })
          const project = yield* createProject(app.url)
          yield* chatTurn(app.wsUrl, project.id)
          return project.requestId
        })
      )
      expect(requestId).toBe("trace-me-1")
      const spans = receiver.spans
      const request = spans.find((span) => span.attributes["http.request_id"] === "trace-me-1")
      expect(request?.attributes["http.request.method"]).toBe("POST")
      const generation = spans.find((span) => span.name === "Chat.generation")
      expect(generation?.attributes).toMatchObject({
        "gen_ai.request.model": "claude-sonnet-5-5",
        "gen_ai.usage.input_tokens": 42,
        "gen_ai.usage.output_tokens": 7,
        "chat.status": "complete",
        "chat.chunks": 2
      })
      expect(typeof generation?.attributes["chat.time_to_first_chunk_ms"]).toBe("number")
      const claude = spans.find((span) => span.name === "Claude.stream")
      expect(claude?.traceId).toBe(generation?.traceId)
      expect(claude?.attributes["model"]).toBe("claude-sonnet-5-5")
      // SQL queries are child spans of the request that ran them.
      const requestQueries = spans.filter((span) => span.traceId === request?.traceId && span.name.startsWith("sql."))
      expect(requestQueries.length).toBeGreaterThan(0)
    }))

  it.scoped("exports nothing and needs no receiver when the endpoint is unset", () =>
    Effect.gen(function* () {
      const receiver = yield* OtlpReceiver
      yield* Effect.scoped(
        Effect.gen(function* () {
          const app = yield* startTestApp()
          yield* createProject(app.url)
        })
      )
      expect(receiver.spans).toEqual([])
    }))
})
