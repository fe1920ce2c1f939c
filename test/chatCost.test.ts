/**
 * What an answer costs and how it ends (issue 14), through the chat service's interface on a
 * scripted Claude: usage summed over continuations (on `message_complete` and stored), every
 * stop reason handled as a user expects (refusal, pause_turn, model_context_window_exceeded,
 * end_turn, stop_sequence), and the exact token count near the context budget, with its
 * failure falling back to the estimate.
 */
import { describe, expect, it, vi } from "@effect/vitest"
import { Effect } from "effect"
import { type CompletionRequest, SYSTEM_PROMPT, type Usage } from "../src/claude/Claude.js"
import { CONTINUE_INSTRUCTION } from "../src/claude/Continuation.js"
import { REFUSAL_NOTICE } from "../src/chat/Answers.js"
import { claudeError } from "../src/domain/ClaudeError.js"
import type { ProjectId } from "../src/domain/Ids.js"
import { memorySubscriber, startChatService } from "./support/ChatService.js"
import { estimatedRequestTokens } from "./support/ScriptedClaude.js"

type Service = Effect.Effect.Success<ReturnType<typeof startChatService>>

const ask = (content: string) => ({ type: "chat_message" as const, content })

const usage = (inputTokens: number, outputTokens: number, cacheReadInputTokens = 0, cacheCreationInputTokens = 0): Usage => ({
  inputTokens,
  outputTokens,
  cacheReadInputTokens,
  cacheCreationInputTokens
})

interface StoredAnswer {
  readonly content: string
  readonly status: string
  readonly stopReason: string | null
  readonly continuations: number
  readonly inputTokens: number | null
  readonly outputTokens: number | null
  readonly cacheReadInputTokens: number | null
  readonly cacheCreationInputTokens: number | null
}

const storedAnswer = (service: Service, id: unknown) =>
  service.sql<StoredAnswer>`SELECT content, status, stop_reason, continuations, input_tokens, output_tokens,
      cache_read_input_tokens, cache_creation_input_tokens FROM messages WHERE id = ${String(id)}`.pipe(
    Effect.orDie,
    Effect.map((rows) => rows[0])
  )

/** A project with a subscriber, and a question sent: returns the first request's scripted answer. */
const asking = (service: Service, content: string, projectId?: ProjectId) =>
  Effect.gen(function* () {
    const project = projectId ?? (yield* service.newProject)
    const listener = memorySubscriber()
    yield* service.chat.connect(project, listener.subscriber)
    yield* service.chat.send(project, ask(content), listener.subscriber)
    const answer = yield* service.claude.nextAnswer
    return { projectId: project, listener, answer }
  })

describe("Chat service: usage per answer", () => {
  it.scopedLive("sums usage over a max_tokens continuation, on message_complete and in the stored row", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const { listener, answer } = yield* asking(service, "build me an app")
      answer.delta("First half, ")
      answer.finish("max_tokens", usage(100, 50, 1000, 200))
      const second = yield* service.claude.nextAnswer
      expect(second.request.messages.at(-1)?.content).toBe(CONTINUE_INSTRUCTION)
      second.delta("second half.")
      second.finish("end_turn", usage(10, 20, 1300, 30))
      const [complete] = yield* listener.waitFor("message_complete")
      const expected = usage(110, 70, 2300, 230)
      expect(complete).toMatchObject({ status: "complete", stopReason: "end_turn", continuations: 1, usage: expected })
      expect(yield* storedAnswer(service, complete?.["messageId"])).toMatchObject({
        continuations: 1,
        inputTokens: 110,
        outputTokens: 70,
        cacheReadInputTokens: 2300,
        cacheCreationInputTokens: 230
      })
    }))

  it.scopedLive("the answer finished log line carries the usage and the stop reason", () =>
    Effect.gen(function* () {
      // The service's JSON log lines reach `console.log` (test/support/ConsoleLogs.ts).
      const lines: Array<Record<string, unknown>> = []
      const spy = vi.spyOn(console, "log").mockImplementation((line: unknown) => {
        if (typeof line === "string" && line.startsWith("{")) lines.push(JSON.parse(line) as Record<string, unknown>)
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => spy.mockRestore()))
      const service = yield* startChatService({ LOG_LEVEL: "info" })
      const { listener, answer } = yield* asking(service, "build me an app")
      answer.delta("Done.")
      answer.finish("end_turn", usage(12, 34, 560, 78))
      const [complete] = yield* listener.waitFor("message_complete")
      const isFinished = (line: Record<string, unknown>) => line["message"] === "answer finished" && line["messageId"] === complete?.["messageId"]
      // The line is written right after the event goes out: wait for it (liveness bound only).
      for (let i = 0; i < 500 && !lines.some(isFinished); i++) yield* Effect.sleep("10 millis")
      const finished = lines.find(isFinished)
      expect(finished).toMatchObject({
        status: "complete",
        stopReason: "end_turn",
        inputTokens: 12,
        outputTokens: 34,
        cacheReadInputTokens: 560,
        cacheCreationInputTokens: 78
      })
      // Never the message contents at info level.
      expect(JSON.stringify(lines)).not.toContain("build me an app")
    }))

  it.scopedLive("an answer cancelled before Claude reported anything has null usage", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const { projectId, listener, answer } = yield* asking(service, "build me an app")
      answer.delta("Some")
      yield* listener.waitFor("message_chunk")
      yield* service.chat.cancel(projectId, undefined)
      const [complete] = yield* listener.waitFor("message_complete")
      expect(complete).toMatchObject({ status: "cancelled", usage: null })
      expect(yield* storedAnswer(service, complete?.["messageId"])).toMatchObject({ inputTokens: null, outputTokens: null })
    }))

  it.scopedLive("a continued answer adds to the usage it had stored (continue after max_tokens at the bound)", () =>
    Effect.gen(function* () {
      const service = yield* startChatService({ CLAUDE_MAX_CONTINUATIONS: "0" })
      const { projectId, listener, answer } = yield* asking(service, "build me an app")
      answer.delta("Cut ")
      answer.finish("max_tokens", usage(100, 4000))
      const [first] = yield* listener.waitFor("message_complete")
      expect(first).toMatchObject({ stopReason: "max_tokens", usage: usage(100, 4000) })
      yield* service.chat.continueAnswer(projectId, { type: "continue", messageId: first?.["messageId"] as never }, listener.subscriber)
      const next = yield* service.claude.nextAnswer
      next.delta("and finished.")
      next.finish("end_turn", usage(5, 6, 90, 10))
      const [, second] = yield* listener.waitFor("message_complete", 2)
      expect(second).toMatchObject({ stopReason: "end_turn", continuations: 1, usage: usage(105, 4006, 90, 10) })
    }))
})

describe("Chat service: every stop reason", () => {
  for (const stopReason of ["end_turn", "stop_sequence"] as const) {
    it.scopedLive(`${stopReason} completes the answer with no continuation`, () =>
      Effect.gen(function* () {
        const service = yield* startChatService()
        const { listener, answer } = yield* asking(service, "hello")
        answer.delta("Hi there.")
        answer.finish(stopReason)
        const [complete] = yield* listener.waitFor("message_complete")
        expect(complete).toMatchObject({ status: "complete", stopReason, continuations: 0, fullContent: "Hi there." })
        expect(service.claude.requests).toHaveLength(1)
      }))
  }

  it.scopedLive("pause_turn is continued (one more continuation) until Claude ends the turn", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const { listener, answer } = yield* asking(service, "build me a long app")
      answer.delta("Part one. ")
      answer.finish("pause_turn", usage(10, 3))
      const next = yield* service.claude.nextAnswer
      expect(next.request.messages.slice(-2)).toEqual([
        { role: "assistant", content: "Part one. " },
        { role: "user", content: CONTINUE_INSTRUCTION }
      ])
      next.delta("Part two.")
      next.finish("end_turn", usage(20, 4))
      const [complete] = yield* listener.waitFor("message_complete")
      expect(complete).toMatchObject({
        status: "complete",
        stopReason: "end_turn",
        continuations: 1,
        fullContent: "Part one. Part two.",
        usage: usage(30, 7)
      })
    }))

  it.scopedLive("refusal ends the answer: stored complete with stopReason refusal, the user reads a clear sentence, and the refused turn is left out of later contexts", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const first = yield* asking(service, "build me a calculator")
      first.answer.delta("Here is a calculator.")
      first.answer.finish("end_turn")
      yield* first.listener.waitFor("message_complete")

      // Refused with no text: the notice is the answer.
      yield* service.chat.send(first.projectId, ask("something Claude refuses"), first.listener.subscriber)
      const refused = yield* service.claude.nextAnswer
      refused.finish("refusal", usage(40, 1))
      const [, complete] = yield* first.listener.waitFor("message_complete", 2)
      expect(complete).toMatchObject({ status: "complete", stopReason: "refusal", fullContent: REFUSAL_NOTICE, continuations: 0 })
      expect(first.listener.ofType("message_chunk").at(-1)).toMatchObject({ content: REFUSAL_NOTICE })
      expect(yield* storedAnswer(service, complete?.["messageId"])).toMatchObject({
        status: "complete",
        stopReason: "refusal",
        content: REFUSAL_NOTICE
      })
      expect(service.claude.requests).toHaveLength(2)

      // Refused after some text: the notice is appended.
      yield* service.chat.send(first.projectId, ask("another refused thing"), first.listener.subscriber)
      const partly = yield* service.claude.nextAnswer
      partly.delta("I started, but")
      partly.finish("refusal")
      const [, , appended] = yield* first.listener.waitFor("message_complete", 3)
      expect(appended).toMatchObject({ stopReason: "refusal", fullContent: `I started, but\n\n${REFUSAL_NOTICE}` })

      // The next question's context has neither refused exchange.
      yield* service.chat.send(first.projectId, ask("add a square root key"), first.listener.subscriber)
      const next = yield* service.claude.nextAnswer
      expect(next.request.messages).toEqual([
        { role: "user", content: "build me a calculator" },
        { role: "assistant", content: "Here is a calculator." },
        { role: "user", content: "add a square root key" }
      ])
      next.finish("end_turn")
    }))

  it.scopedLive("model_context_window_exceeded: the context is trimmed and the answer continued once; a second one ends it", () =>
    Effect.gen(function* () {
      // A budget the whole history fits in, but not in half of it.
      const service = yield* startChatService({ CONTEXT_TOKEN_BUDGET: "2000" })
      const projectId = yield* service.newProject
      const long = "a long earlier message ".repeat(40) // ~230 tokens by the estimate
      for (let turn = 0; turn < 3; turn++) {
        const { answer, listener } = yield* asking(service, `question ${turn}: ${long}`, projectId)
        answer.delta(`answer ${turn}: ${long}`)
        answer.finish("end_turn")
        yield* listener.waitFor("message_complete")
      }
      const { answer, listener } = yield* asking(service, "the last question", projectId)
      const full = answer.request.messages.length
      expect(full).toBe(7)
      answer.delta("Started. ")
      answer.finish("model_context_window_exceeded", usage(1500, 2))
      const trimmed = yield* service.claude.nextAnswer
      // Trimmed to half the budget: older turns dropped; still the latest question, then the continuation.
      expect(trimmed.request.messages.length).toBeLessThan(full + 2)
      expect(trimmed.request.messages.slice(-3)).toEqual([
        { role: "user", content: "the last question" },
        { role: "assistant", content: "Started. " },
        { role: "user", content: CONTINUE_INSTRUCTION }
      ])
      expect(estimatedRequestTokens(trimmed.request)).toBeLessThanOrEqual(1000)
      trimmed.delta("Still too long.")
      trimmed.finish("model_context_window_exceeded", usage(800, 3))
      const [complete] = yield* listener.waitFor("message_complete")
      expect(complete).toMatchObject({
        status: "complete",
        stopReason: "model_context_window_exceeded",
        continuations: 1,
        fullContent: "Started. Still too long.",
        usage: usage(2300, 5)
      })
      expect(service.claude.requests).toHaveLength(3 + 2)
    }))
})

describe("Chat service: the exact token count near the budget", () => {
  const BUDGET = 3000
  // 1,800 characters: with its prefix ~451 tokens by the estimate. Three exchanges, the system
  // prompt (~139) and a short question come to ~2,846: within the budget, but within 10% of it.
  const turn = "word ".repeat(360)

  /** A project with `turns` earlier exchanges of `turn`-sized messages. */
  const historyOf = (service: Service, turns: number) =>
    Effect.gen(function* () {
      const projectId = yield* service.newProject
      for (let i = 0; i < turns; i++) {
        const { answer, listener } = yield* asking(service, `q${i} ${turn}`, projectId)
        answer.delta(`a${i} ${turn}`)
        answer.finish("end_turn")
        yield* listener.waitFor("message_complete")
      }
      return projectId
    })

  it.scopedLive("far below the budget the estimate alone decides: count_tokens is not called", () =>
    Effect.gen(function* () {
      const service = yield* startChatService({ CONTEXT_TOKEN_BUDGET: String(BUDGET * 10) })
      const projectId = yield* historyOf(service, 2)
      const { answer } = yield* asking(service, "next", projectId)
      expect(answer.request.messages).toHaveLength(5)
      answer.finish("end_turn")
      expect(service.claude.countRequests).toHaveLength(0)
    }))

  it.scopedLive("within 10% of the budget the context is counted exactly and trimmed until the count fits", () =>
    Effect.gen(function* () {
      // The real tokenizer counts this text as 1.5× the estimate.
      const service = yield* startChatService(
        { CONTEXT_TOKEN_BUDGET: String(BUDGET) },
        { countTokens: (request: CompletionRequest) => Effect.succeed(Math.ceil(estimatedRequestTokens(request) * 1.5)) }
      )
      const projectId = yield* historyOf(service, 3)
      const { answer } = yield* asking(service, "next", projectId)
      const sent = answer.request
      expect(service.claude.countRequests.length).toBeGreaterThan(0)
      // The first count was of the context the estimate allowed (near the budget), the last fits.
      const counts = service.claude.countRequests.map((request) => Math.ceil(estimatedRequestTokens(request) * 1.5))
      expect(counts[0]).toBeGreaterThan(BUDGET)
      expect(Math.ceil(estimatedRequestTokens(sent) * 1.5)).toBeLessThanOrEqual(BUDGET)
      expect(sent.system).toBe(SYSTEM_PROMPT)
      expect(sent.messages.at(-1)).toEqual({ role: "user", content: "next" })
      expect(sent.messages[0]?.role).toBe("user")
      answer.finish("end_turn")
    }))

  it.scopedLive("a failing count_tokens falls back to the estimate: the answer goes on with the estimated context", () =>
    Effect.gen(function* () {
      const service = yield* startChatService(
        { CONTEXT_TOKEN_BUDGET: String(BUDGET) },
        { countTokens: () => Effect.fail(claudeError("AI_OVERLOADED", "scripted count failure")) }
      )
      const projectId = yield* historyOf(service, 3)
      const { answer, listener } = yield* asking(service, "next", projectId)
      expect(service.claude.countRequests).toHaveLength(1)
      // What the estimate allows: within the budget by the estimate.
      expect(estimatedRequestTokens(answer.request)).toBeLessThanOrEqual(BUDGET)
      expect(estimatedRequestTokens(answer.request)).toBeGreaterThan(BUDGET * 0.9)
      answer.delta("fine")
      answer.finish("end_turn")
      const [complete] = yield* listener.waitFor("message_complete")
      expect(complete).toMatchObject({ status: "complete", fullContent: "fine" })
    }))
})
