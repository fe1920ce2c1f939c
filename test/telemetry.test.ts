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
      fake.setDefault({
        kind: "text",
        chunks: ["Here ", "you go:\n```python\nprint(1)\n```"],
        inputTokens: 42,
        outputTokens: 7,
        cacheReadInputTokens: 1200,
        cacheCreationInputTokens: 300
      })
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
        "gen_ai.usage.cache_read_input_tokens": 1200,
        "gen_ai.usage.cache_creation_input_tokens": 300,
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

  it.scoped("exports nothing when OTEL_EXPORTER_OTLP_ENDPOINT is unset, even with a receiver's URL everywhere else", () =>
    Effect.gen(function* () {
      const receiver = yield* OtlpReceiver
      const fake = yield* FakeAnthropicScoped
      // The receiver's URL where an OpenTelemetry SDK installed by mistake would find it: the
      // standard per-signal variables, in the service's configuration and in this process's
      // environment (which the SDK's exporters read). Only the variable the service
      // documents is left unset, so spans can reach the receiver only if that gate is broken.
      const tracesUrl = `${receiver.url}/v1/traces`
      const previous = process.env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          process.env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = tracesUrl
        }),
        () =>
          Effect.sync(() => {
            if (previous === undefined) delete process.env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
            else process.env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = previous
          })
      )
      expect(process.env["OTEL_EXPORTER_OTLP_ENDPOINT"]).toBeUndefined()
      yield* Effect.scoped(
        Effect.gen(function* () {
          const app = yield* startTestApp({
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: tracesUrl,
            OTEL_SERVICE_NAME: "go-chat-untraced",
            CLAUDE_API_KEY: "sk-ant-test-key",
            CLAUDE_BASE_URL: fake.url
          })
          const project = yield* createProject(app.url)
          // The same work as the test above, which does export spans: requests, an answer, SQL.
          yield* chatTurn(app.wsUrl, project.id)
        })
      )
      expect(fake.requests.length).toBeGreaterThan(0)
      expect(receiver.spans).toEqual([])
      expect(receiver.exports).toBe(0)
    }))
})
