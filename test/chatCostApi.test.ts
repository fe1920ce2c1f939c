/**
 * Claude's cost through the whole service (issue 14): the real SDK against the fake Messages
 * API, which emulates prompt caching and answers count_tokens. Request shapes (cache_control
 * on answers only, its TTL, off), usage summed over a continuation on `message_complete` and
 * in `GET /api/projects/:id` (per answer and the project's totals), the cache read from the
 * second turn on, every stop reason through the fake, and count_tokens near the budget.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { SYSTEM_PROMPT } from "../src/claude/Claude.js"
import { CONTINUE_INSTRUCTION } from "../src/claude/Continuation.js"
import { REFUSAL_NOTICE } from "../src/chat/Answers.js"
import { claudeChat, getProject } from "./support/ChatApp.js"
import type { FakeStopReason } from "./support/FakeAnthropic.js"

const TEST_TIMEOUT = 60_000

type UsageView = { readonly inputTokens: number; readonly outputTokens: number; readonly cacheReadInputTokens: number; readonly cacheCreationInputTokens: number }

const promptOf = (usage: UsageView) => usage.inputTokens + usage.cacheReadInputTokens + usage.cacheCreationInputTokens

const usageOfEnd = (end: unknown): UsageView => {
  const usage = (end as { usage?: UsageView | null }).usage
  if (usage === undefined || usage === null) throw new Error(`no usage on ${JSON.stringify(end)}`)
  return usage
}

describe.concurrent("chat: prompt caching requests", () => {
  it.scopedLive("answers ask for caching (5m by default), the title request does not", () =>
    Effect.gen(function* () {
      const { fake, client } = yield* claudeChat()
      yield* client.ask("Build me an inventory tracker")
      yield* Effect.promise(() => fake.fake.idle())
      expect(fake.chatRequests()[0]).toMatchObject({ cache_control: { type: "ephemeral", ttl: "5m" }, system: SYSTEM_PROMPT })
      // The title comes after the first answer starts; wait until it has been asked for.
      for (let i = 0; i < 200 && fake.titleRequests().length === 0; i++) yield* Effect.sleep("25 millis")
      expect(fake.titleRequests()).toHaveLength(1)
      expect(fake.titleRequests()[0]).not.toHaveProperty("cache_control")
    }), TEST_TIMEOUT)

  for (const [ttl, expected] of [["1h", { type: "ephemeral", ttl: "1h" }], ["off", undefined]] as const) {
    it.scopedLive(`CLAUDE_CACHE_TTL=${ttl}`, () =>
      Effect.gen(function* () {
        const { fake, client } = yield* claudeChat({ title: "Titled", env: { CLAUDE_CACHE_TTL: ttl } })
        const answer = yield* client.ask("Build me an inventory tracker")
        const body = fake.chatRequests()[0] as unknown as Record<string, unknown>
        if (expected === undefined) {
          expect(body).not.toHaveProperty("cache_control")
          // Nothing cached: the whole prompt is uncached input.
          expect(usageOfEnd(answer.end)).toMatchObject({ cacheReadInputTokens: 0, cacheCreationInputTokens: 0 })
        } else {
          expect(body["cache_control"]).toEqual(expected)
        }
      }), TEST_TIMEOUT)
  }
})

describe.concurrent("chat: usage per answer and per project", () => {
  it.scopedLive("usage is summed over a max_tokens continuation; GET /api/projects/:id has it per answer and the project's totals; the second turn reads the first from the cache", () =>
    Effect.gen(function* () {
      const { fake, app, project, client } = yield* claudeChat({ title: "Costs" })
      fake.enqueueChat(
        { kind: "text", chunks: ["Here is the first half ", "of the app, "], stopReason: "max_tokens" },
        { kind: "text", chunks: ["and the second half."] }
      )
      const first = yield* client.ask("Build me an inventory tracker")
      expect(fake.chatRequests()).toHaveLength(2)
      expect(fake.chatRequests()[1]?.messages.at(-1)).toEqual({ role: "user", content: CONTINUE_INSTRUCTION })
      const firstUsage = usageOfEnd(first.end)
      expect(first.end).toMatchObject({ status: "complete", stopReason: "end_turn", continuations: 1 })
      // Two requests: three output tokens (one a chunk), the first prompt written to the cache and
      // the continuation reading it back.
      expect(firstUsage.outputTokens).toBe(3)
      expect(firstUsage.cacheReadInputTokens).toBeGreaterThan(0)
      expect(firstUsage.cacheCreationInputTokens).toBeGreaterThan(firstUsage.cacheReadInputTokens)

      fake.enqueueChat({ kind: "text", chunks: ["Search added."] })
      const second = yield* client.ask("Add a search feature")
      const secondUsage = usageOfEnd(second.end)
      // The second turn's prompt is the first turn's plus two messages: most of it is read from the cache.
      expect(secondUsage.cacheReadInputTokens / promptOf(secondUsage)).toBeGreaterThan(0.8)

      const stored = yield* getProject(app, project.id)
      const answers = stored.messages.flatMap((m) => (m.role === "assistant" ? [m] : []))
      expect(answers.map((m) => ({ usage: m.usage, continuations: m.continuations, stopReason: m.stopReason }))).toEqual([
        { usage: firstUsage, continuations: 1, stopReason: "end_turn" },
        { usage: secondUsage, continuations: 0, stopReason: "end_turn" }
      ])
      expect(stored.usage).toEqual({
        inputTokens: firstUsage.inputTokens + secondUsage.inputTokens,
        outputTokens: firstUsage.outputTokens + secondUsage.outputTokens,
        cacheReadInputTokens: firstUsage.cacheReadInputTokens + secondUsage.cacheReadInputTokens,
        cacheCreationInputTokens: firstUsage.cacheCreationInputTokens + secondUsage.cacheCreationInputTokens
      })
    }), TEST_TIMEOUT)
})

describe.concurrent("chat: every stop reason through the fake", () => {
  const cases: ReadonlyArray<readonly [FakeStopReason, number, string]> = [
    ["end_turn", 1, "Done."],
    ["stop_sequence", 1, "Done."],
    ["refusal", 1, `Done.\n\n${REFUSAL_NOTICE}`],
    ["pause_turn", 2, "Done. Then more."],
    ["model_context_window_exceeded", 2, "Done. Then more."]
  ]
  for (const [stopReason, requests, fullContent] of cases) {
    it.scopedLive(`${stopReason}`, () =>
      Effect.gen(function* () {
        const { fake, client } = yield* claudeChat({ title: "Stops" })
        fake.enqueueChat({ kind: "text", chunks: ["Done."], stopReason }, { kind: "text", chunks: [" Then more."] })
        const answer = yield* client.ask("Build me a todo app")
        expect(fake.chatRequests()).toHaveLength(requests)
        expect(answer.end).toMatchObject({
          type: "message_complete",
          status: "complete",
          stopReason: requests === 1 ? stopReason : "end_turn",
          continuations: requests - 1,
          fullContent
        })
        expect(usageOfEnd(answer.end).outputTokens).toBe(requests)
      }), TEST_TIMEOUT)
  }
})

describe.concurrent("chat: count_tokens near the budget", () => {
  // The system prompt and ~90 estimated tokens of question: within 10% of the budget.
  const budget = Math.ceil(SYSTEM_PROMPT.length / 4) + 100
  const question = "Please build this: " + "x".repeat(340)

  it.scopedLive("the context is counted exactly before it is sent", () =>
    Effect.gen(function* () {
      const { fake, client } = yield* claudeChat({ title: "Counted", env: { CONTEXT_TOKEN_BUDGET: String(budget) } })
      const answer = yield* client.ask(question)
      expect(answer.end).toMatchObject({ status: "complete" })
      expect(fake.fake.countRequests).toBe(1)
      const counted = fake.requests.find((r) => r.path === "/v1/messages/count_tokens")
      expect(counted?.body).toEqual({
        model: "claude-sonnet-5-5",
        system: SYSTEM_PROMPT,
        messages: [{ role: "user", content: question }]
      })
    }), TEST_TIMEOUT)

  it.scopedLive("a failing count_tokens falls back to the estimate and the answer goes on", () =>
    Effect.gen(function* () {
      const { fake, client } = yield* claudeChat({ title: "Uncounted", env: { CONTEXT_TOKEN_BUDGET: String(budget) } })
      fake.fake.setCountTokens(() => ({ kind: "httpError", errorType: "api_error" }))
      const answer = yield* client.ask(question)
      expect(answer.end).toMatchObject({ status: "complete", fullContent: "Hello from the fake Claude." })
      expect(fake.requests.filter((r) => r.path === "/v1/messages/count_tokens")).toHaveLength(1)
      expect(fake.chatRequests()[0]?.messages).toEqual([{ role: "user", content: question }])
    }), TEST_TIMEOUT)
})
