/**
 * The Claude service (`ClaudeLive`) on its own, with the real SDK against the fake Messages
 * API: the stream's events, interruption aborting the upstream request, the SDK's bounded
 * retries, the idle watchdog, titles, and how every SDK failure maps to a PRD error code
 * without leaking what the API said.
 */
import Anthropic from "@anthropic-ai/sdk"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, ConfigProvider, Context, Deferred, Effect, Either, Fiber, Layer, Redacted, Stream } from "effect"
import fc from "fast-check"
import { Claude, type CompletionEvent, type CompletionRequest, SYSTEM_PROMPT } from "../src/claude/Claude.js"
import { ClaudeError } from "../src/domain/ClaudeError.js"
import { ClaudeLive } from "../src/claude/ClaudeLive.js"
import { toClaudeError } from "../src/claude/ClaudeSdk.js"
import { AppConfig } from "../src/Config.js"
import { type FakeAnthropic, type FakeReply, FakeAnthropicScoped, gate } from "./support/FakeAnthropic.js"
import { LIVENESS_TIMEOUT_MS } from "./support/Http.js"

const KEY = "sk-ant-test-key"
const TEST_TIMEOUT = 60_000

const REQUEST: CompletionRequest = {
  system: SYSTEM_PROMPT,
  messages: [
    { role: "user", content: "Build me an inventory tracker" },
    { role: "assistant", content: "Here it is." },
    { role: "user", content: "Add a search feature" }
  ]
}

/** ClaudeLive built from a config map, exactly as the service builds it from the environment. */
const claudeFor = (fake: FakeAnthropic, env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const provider = ConfigProvider.fromMap(
      new Map(Object.entries({ CLAUDE_BASE_URL: fake.url, CLAUDE_MAX_RETRIES: "0", ...env }))
    )
    const layer = ClaudeLive(Redacted.make(KEY)).pipe(
      Layer.provide(AppConfig.layer),
      Layer.provide(Layer.setConfigProvider(provider))
    )
    const context = yield* Layer.build(layer)
    return Context.get(context, Claude)
  })

/** Runs a stream to its end, keeping what it emitted before any failure. */
const runStream = (stream: Stream.Stream<CompletionEvent, ClaudeError>) =>
  Effect.gen(function* () {
    const seen: Array<CompletionEvent> = []
    const result = yield* stream.pipe(
      Stream.runForEach((event) => Effect.sync(() => void seen.push(event))),
      Effect.either
    )
    return { seen, error: Either.isLeft(result) ? result.left : undefined }
  })

const texts = (events: ReadonlyArray<CompletionEvent>) =>
  events.flatMap((e) => (e._tag === "TextDelta" ? [e.text] : []))

const fakeIdle = (fake: FakeAnthropic) =>
  Effect.promise(() => fake.idle()).pipe(
    Effect.timeoutFail({ duration: LIVENESS_TIMEOUT_MS, onTimeout: () => new Error("the fake still has a stream open") }),
    Effect.orDie
  )

const bodyOf = (fake: FakeAnthropic, i: number) => fake.requests[i]?.body as Record<string, unknown> | undefined

describe.concurrent("ClaudeLive: streaming", () => {
  it.scopedLive("a request cancelled while the SDK is still loading does not stop the others", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      fake.enqueue({ kind: "text", chunks: ["Still", " here"] })
      fake.enqueue({ kind: "text", chunks: ["Still", " here"] })
      // Both ask before the SDK has loaded (the layer loads it a second after it is built, or when asked).
      const claude = yield* claudeFor(fake)
      const cancelled = yield* Effect.fork(runStream(claude.stream(REQUEST)))
      const other = yield* Effect.fork(runStream(claude.stream(REQUEST)))
      // Both are waiting for the SDK now (loading it takes far longer than a turn of the scheduler).
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(cancelled)
      const { seen, error } = yield* Fiber.join(other)
      expect(error).toBeUndefined()
      expect(texts(seen).join("")).toBe("Still here")
    }), TEST_TIMEOUT)

  it.scopedLive("streams text deltas in order, then exactly one Finished with stop reason and token usage", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const claude = yield* claudeFor(fake, { CLAUDE_MODEL: "claude-test-sonnet", CLAUDE_MAX_TOKENS: "777" })
      expect(claude.kind).toBe("claude")
      fake.enqueue({ kind: "text", chunks: ["Hello", ", ", "world", "!"], chunkDelayMs: 5, inputTokens: 42, outputTokens: 7 })
      const { seen, error } = yield* runStream(claude.stream(REQUEST))
      expect(error).toBeUndefined()
      expect(seen).toEqual([
        { _tag: "TextDelta", text: "Hello" },
        { _tag: "TextDelta", text: ", " },
        { _tag: "TextDelta", text: "world" },
        { _tag: "TextDelta", text: "!" },
        { _tag: "Finished", summary: { stopReason: "end_turn", usage: { inputTokens: 42, outputTokens: 7, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 } } }
      ])

      // The request: configured model and max_tokens, the system prompt and messages as given, streamed.
      expect(fake.requests).toHaveLength(1)
      expect(bodyOf(fake, 0)).toEqual({
        model: "claude-test-sonnet",
        max_tokens: 777,
        system: SYSTEM_PROMPT,
        messages: REQUEST.messages,
        // Prompt caching (CLAUDE_CACHE_TTL, default 5m): the top-level, automatic breakpoint.
        cache_control: { type: "ephemeral", ttl: "5m" },
        stream: true
      })
      const headers = fake.requests[0]?.headers ?? {}
      expect(headers["anthropic-version"]).toBe("2026-10-21")
      expect(`${headers["x-api-key"] ?? ""} ${headers["authorization"] ?? ""}`).toContain(KEY)
    }), TEST_TIMEOUT)

  it.scopedLive("reports max_tokens as the stop reason", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const claude = yield* claudeFor(fake)
      fake.enqueue({ kind: "text", chunks: ["cut"], stopReason: "max_tokens", inputTokens: 3, outputTokens: 1 })
      const { seen } = yield* runStream(claude.stream(REQUEST))
      expect(seen.at(-1)).toEqual({ _tag: "Finished", summary: { stopReason: "max_tokens", usage: { inputTokens: 3, outputTokens: 1, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 } } })
      expect(seen.filter((e) => e._tag === "Finished")).toHaveLength(1)
    }), TEST_TIMEOUT)

  it.scopedLive("streams the text of a second content block too, and reports cache usage apart from the uncached input", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const claude = yield* claudeFor(fake)
      fake.enqueue({
        kind: "text",
        chunks: ["First block. "],
        secondBlock: ["Second ", "block."],
        inputTokens: 11,
        outputTokens: 5,
        cacheCreationInputTokens: 300,
        cacheReadInputTokens: 200
      })
      const { seen, error } = yield* runStream(claude.stream(REQUEST))
      expect(error).toBeUndefined()
      expect(texts(seen)).toEqual(["First block. ", "Second ", "block."])
      expect(seen.at(-1)).toEqual({ _tag: "Finished", summary: { stopReason: "end_turn", usage: { inputTokens: 11, outputTokens: 5, cacheReadInputTokens: 200, cacheCreationInputTokens: 300 } } })
    }), TEST_TIMEOUT)

  for (const stopReason of ["stop_sequence", "refusal", "pause_turn", "model_context_window_exceeded"] as const) {
    it.scopedLive(`reports ${stopReason} as the stop reason`, () =>
      Effect.gen(function* () {
        const fake = yield* FakeAnthropicScoped
        const claude = yield* claudeFor(fake)
        fake.enqueue({ kind: "text", chunks: ["partial"], stopReason, inputTokens: 3, outputTokens: 1 })
        const { seen, error } = yield* runStream(claude.stream(REQUEST))
        expect(error).toBeUndefined()
        expect(seen.at(-1)).toEqual({ _tag: "Finished", summary: { stopReason, usage: { inputTokens: 3, outputTokens: 1, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 } } })
      }), TEST_TIMEOUT)
  }

  it.scopedLive("interrupting the stream mid-answer aborts the upstream request at once", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const claude = yield* claudeFor(fake)
      // Held after the first chunk and never released: only the client can end it.
      fake.enqueue({ kind: "text", chunks: Array.from({ length: 200 }, (_, i) => `chunk${i} `), pauseAfter: 1, resume: gate().promise })
      const firstDelta = yield* Deferred.make<void>()
      const fiber = yield* claude.stream(REQUEST).pipe(
        Stream.tap(() => Deferred.succeed(firstDelta, undefined)),
        Stream.runDrain,
        Effect.fork
      )
      yield* Deferred.await(firstDelta)
      expect(fake.openStreams).toBe(1)
      yield* Fiber.interrupt(fiber)
      // The fake sees the client leave (the answer itself would never end).
      yield* fakeIdle(fake)
      expect(fake.abortedStreams).toBe(1)
      expect(fake.openStreams).toBe(0)
    }), TEST_TIMEOUT)

  it.scopedLive("a stream consumed only partly (take) also releases the upstream request", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const claude = yield* claudeFor(fake)
      fake.enqueue({ kind: "text", chunks: Array.from({ length: 100 }, () => "x"), pauseAfter: 2, resume: gate().promise })
      const firstTwo = yield* claude.stream(REQUEST).pipe(Stream.take(2), Stream.runCollect)
      expect(texts(Chunk.toReadonlyArray(firstTwo))).toEqual(["x", "x"])
      yield* fakeIdle(fake)
      expect(fake.abortedStreams).toBe(1)
    }), TEST_TIMEOUT)
})

// Not concurrent: the watchdog cases run on real time (gaps against CLAUDE_IDLE_TIMEOUT_SECONDS).
describe("ClaudeLive: retries and failures", () => {
  it.scopedLive("retries a 529 with retry-after before the stream starts, then succeeds (2 requests)", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const claude = yield* claudeFor(fake, { CLAUDE_MAX_RETRIES: "1" })
      fake.enqueue(
        { kind: "httpError", errorType: "overloaded_error", retryAfterSeconds: 0 },
        { kind: "text", chunks: ["after ", "a retry"] }
      )
      const { seen, error } = yield* runStream(claude.stream(REQUEST))
      expect(error).toBeUndefined()
      expect(texts(seen)).toEqual(["after ", "a retry"])
      expect(fake.requests).toHaveLength(2)
      expect(bodyOf(fake, 1)).toEqual(bodyOf(fake, 0))
    }), TEST_TIMEOUT)

  it.scopedLive("retries a 429 too, and stops after CLAUDE_MAX_RETRIES", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const claude = yield* claudeFor(fake, { CLAUDE_MAX_RETRIES: "2" })
      const limited: FakeReply = { kind: "httpError", errorType: "rate_limit_error", retryAfterSeconds: 0.01 }
      fake.enqueue(limited, limited, limited, { kind: "text", chunks: ["never sent"] })
      const { seen, error } = yield* runStream(claude.stream(REQUEST))
      expect(error).toMatchObject({ _tag: "ClaudeError", code: "AI_RATE_LIMITED" })
      expect(seen).toEqual([])
      expect(fake.requests).toHaveLength(3)
    }), TEST_TIMEOUT)

  const httpFailures: ReadonlyArray<readonly [FakeReply, string]> = [
    [{ kind: "httpError", errorType: "overloaded_error", retryAfterSeconds: 0 }, "AI_OVERLOADED"],
    [{ kind: "httpError", errorType: "rate_limit_error", retryAfterSeconds: 0 }, "AI_RATE_LIMITED"],
    [{ kind: "httpError", errorType: "authentication_error" }, "AI_AUTH_ERROR"],
    [{ kind: "httpError", errorType: "permission_error" }, "AI_AUTH_ERROR"],
    [{ kind: "httpError", errorType: "api_error", retryAfterSeconds: 0 }, "AI_ERROR"],
    [{ kind: "httpError", errorType: "invalid_request_error" }, "AI_ERROR"],
    [{ kind: "httpError", errorType: "not_found_error" }, "AI_ERROR"]
  ]
  for (const [reply, code] of httpFailures) {
    it.scopedLive(`an HTTP ${reply.kind === "httpError" ? reply.errorType : ""} with no retries left fails with ${code}`, () =>
      Effect.gen(function* () {
        const fake = yield* FakeAnthropicScoped
        const claude = yield* claudeFor(fake, { CLAUDE_MAX_RETRIES: "0" })
        fake.enqueue(reply)
        const { seen, error } = yield* runStream(claude.stream(REQUEST))
        expect(seen).toEqual([])
        expect(error).toBeInstanceOf(ClaudeError)
        expect(error?.code).toBe(code)
        expect(fake.requests).toHaveLength(1)
      }), TEST_TIMEOUT)
  }

  it.scopedLive("a mid-stream overloaded_error fails with AI_OVERLOADED after the deltas received, and is not retried", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const claude = yield* claudeFor(fake, { CLAUDE_MAX_RETRIES: "2" })
      fake.enqueue({ kind: "midStreamError", chunks: ["half ", "an answer"], chunkDelayMs: 10 })
      const { seen, error } = yield* runStream(claude.stream(REQUEST))
      expect(texts(seen)).toEqual(["half ", "an answer"])
      expect(seen.some((e) => e._tag === "Finished")).toBe(false)
      expect(error?.code).toBe("AI_OVERLOADED")
      expect(fake.requests).toHaveLength(1)
    }), TEST_TIMEOUT)

  // The SDK's MessageStream iterator loses an error that arrives while events are still
  // queued for the reader: iteration just ends, with no message_stop. That must still fail.
  it.scopedLive("a mid-stream error arriving together with the last deltas still fails the stream (never a clean end)", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const claude = yield* claudeFor(fake)
      for (const chunks of [["partial"], ["a", "b", "c"]]) {
        fake.enqueue({ kind: "midStreamError", chunks })
        const { seen, error } = yield* runStream(claude.stream(REQUEST))
        expect(texts(seen)).toEqual(chunks)
        expect(seen.some((e) => e._tag === "Finished")).toBe(false)
        expect(error?.code).toBe("AI_OVERLOADED")
      }
    }), TEST_TIMEOUT)

  it.scopedLive("a socket reset mid-stream fails with AI_ERROR", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const claude = yield* claudeFor(fake)
      fake.enqueue({ kind: "socketReset", chunks: ["cut ", "off"], chunkDelayMs: 10 })
      const { seen, error } = yield* runStream(claude.stream(REQUEST))
      expect(texts(seen)).toEqual(["cut ", "off"])
      expect(seen.some((e) => e._tag === "Finished")).toBe(false)
      expect(error?.code).toBe("AI_ERROR")
    }), TEST_TIMEOUT)

  it.scopedLive("the watchdog fails a stalled stream with AI_TIMEOUT and aborts the upstream request", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      // 2 s: "thinking" is sent at once, so it surely arrives before the watchdog fires.
      const claude = yield* claudeFor(fake, { CLAUDE_IDLE_TIMEOUT_SECONDS: "2" })
      fake.enqueue({ kind: "stall", chunks: ["thinking"] })
      const { seen, error } = yield* runStream(claude.stream(REQUEST))
      expect(texts(seen)).toEqual(["thinking"])
      expect(error?.code).toBe("AI_TIMEOUT")
      yield* fakeIdle(fake)
      expect(fake.abortedStreams).toBe(1)
    }), TEST_TIMEOUT)

  it.scopedLive("the watchdog measures the gap between events, not the whole answer", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      // Gaps of 250 ms, eight times shorter than the 2 s watchdog; the whole answer (3 s) is longer.
      const claude = yield* claudeFor(fake, { CLAUDE_IDLE_TIMEOUT_SECONDS: "2" })
      fake.enqueue({ kind: "text", chunks: Array.from({ length: 12 }, (_, i) => `${i} `), chunkDelayMs: 250, pingEvery: 100 })
      const { seen, error } = yield* runStream(claude.stream(REQUEST))
      expect(error).toBeUndefined()
      expect(texts(seen)).toEqual(Array.from({ length: 12 }, (_, i) => `${i} `))
    }), TEST_TIMEOUT)
})

describe.concurrent("ClaudeLive: prompt caching and token counts", () => {
  it.scopedLive("asks for 1h caching with CLAUDE_CACHE_TTL=1h and none with off; titles are never cached", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const hour = yield* claudeFor(fake, { CLAUDE_CACHE_TTL: "1h" })
      yield* runStream(hour.stream(REQUEST))
      yield* hour.title({ system: "Name it.", messages: [{ role: "user", content: "x" }] })
      const off = yield* claudeFor(fake, { CLAUDE_CACHE_TTL: "off" })
      yield* runStream(off.stream(REQUEST))
      expect(bodyOf(fake, 0)?.["cache_control"]).toEqual({ type: "ephemeral", ttl: "1h" })
      expect(bodyOf(fake, 1)).not.toHaveProperty("cache_control")
      expect(bodyOf(fake, 2)).not.toHaveProperty("cache_control")
    }), TEST_TIMEOUT)

  it.scopedLive("the second turn of a conversation reads the first one's prompt from the cache", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const claude = yield* claudeFor(fake)
      const first: CompletionRequest = { system: SYSTEM_PROMPT, messages: [{ role: "user", content: "Build me an inventory tracker" }] }
      const usageOf = (events: ReadonlyArray<CompletionEvent>) => {
        const last = events.at(-1)
        return last?._tag === "Finished" ? last.summary.usage : undefined
      }
      const one = usageOf((yield* runStream(claude.stream(first))).seen)
      const two = usageOf((yield* runStream(claude.stream(REQUEST))).seen)
      // The first turn writes its whole prompt to the cache, the second reads exactly that back.
      expect(one).toMatchObject({ cacheReadInputTokens: 0, inputTokens: 0 })
      expect(one?.cacheCreationInputTokens).toBeGreaterThan(SYSTEM_PROMPT.length / 4)
      expect(two?.cacheReadInputTokens).toBe(one?.cacheCreationInputTokens)
      expect(two?.cacheCreationInputTokens).toBeGreaterThan(0)
      const { cacheReadInputTokens = 0, cacheCreationInputTokens = 0, inputTokens = 0 } = two ?? {}
      expect(cacheReadInputTokens / (cacheReadInputTokens + cacheCreationInputTokens + inputTokens)).toBeGreaterThan(0.8)
    }), TEST_TIMEOUT)

  it.scopedLive("counts a request's tokens with count_tokens (the same count the prompt's usage adds up to)", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const claude = yield* claudeFor(fake, { CLAUDE_MODEL: "claude-test-sonnet" })
      const counted = yield* claude.countTokens(REQUEST)
      const { seen } = yield* runStream(claude.stream(REQUEST))
      const last = seen.at(-1)
      const usage = last?._tag === "Finished" ? last.summary.usage : undefined
      expect(counted).toBe((usage?.inputTokens ?? 0) + (usage?.cacheReadInputTokens ?? 0) + (usage?.cacheCreationInputTokens ?? 0))
      expect(fake.countRequests).toBe(1)
      expect(fake.requests[0]?.path).toBe("/v1/messages/count_tokens")
      expect(bodyOf(fake, 0)).toEqual({ model: "claude-test-sonnet", system: SYSTEM_PROMPT, messages: REQUEST.messages })
    }), TEST_TIMEOUT)

  it.scopedLive("a failing count_tokens fails with a typed error at once (no retries)", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const claude = yield* claudeFor(fake, { CLAUDE_MAX_RETRIES: "2" })
      fake.setCountTokens(() => ({ kind: "httpError", errorType: "overloaded_error" }))
      const error = yield* Effect.flip(claude.countTokens(REQUEST))
      expect(error).toBeInstanceOf(ClaudeError)
      expect(error.code).toBe("AI_OVERLOADED")
      expect(fake.requests).toHaveLength(1)
    }), TEST_TIMEOUT)
})

describe.concurrent("ClaudeLive: titles", () => {
  it.scopedLive("asks the title model without streaming and returns its text", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const claude = yield* claudeFor(fake, { CLAUDE_TITLE_MODEL: "claude-test-haiku", CLAUDE_MAX_TOKENS: "4096" })
      fake.enqueue({ kind: "text", chunks: ["Inventory ", "Tracker"] })
      const title = yield* claude.title({ system: "Name it.", messages: [{ role: "user", content: "Build me an inventory tracker" }] })
      expect(title).toBe("Inventory Tracker")
      const body = bodyOf(fake, 0)
      expect(body).toMatchObject({ model: "claude-test-haiku", system: "Name it." })
      expect(body?.["stream"]).not.toBe(true)
      expect(body?.["max_tokens"]).toBeLessThan(4096)
    }), TEST_TIMEOUT)

  it.scopedLive("a failing title call fails at once with a typed error (never retried: it must not hold anything up)", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const claude = yield* claudeFor(fake, { CLAUDE_MAX_RETRIES: "3" })
      fake.enqueue({ kind: "httpError", errorType: "api_error", retryAfterSeconds: 0 }, { kind: "text", chunks: ["late"] })
      const error = yield* Effect.flip(claude.title({ system: "Name it.", messages: [{ role: "user", content: "x" }] }))
      expect(error).toMatchObject({ _tag: "ClaudeError", code: "AI_ERROR" })
      expect(fake.requests).toHaveLength(1)
    }), TEST_TIMEOUT)
})

// ---------------------------------------------------------------------------------------------
// toClaudeError

const RAW = "raw upstream words: sk-ant-leaked-key in request req_secret"

const apiError = (status: number, type: string) =>
  Anthropic.APIError.generate(status, { type: "error", error: { type, message: RAW } }, undefined, new Headers({ "request-id": "req_1" }))

const expectSafe = (error: ClaudeError) => {
  expect(error.message.length).toBeGreaterThan(0)
  expect(error.message).not.toContain("raw upstream")
  expect(error.message).not.toContain("sk-ant")
  expect(error.message).not.toContain("req_")
}

describe("toClaudeError", () => {
  const byStatus: ReadonlyArray<readonly [number, string, string]> = [
    [400, "invalid_request_error", "AI_ERROR"],
    [401, "authentication_error", "AI_AUTH_ERROR"],
    [403, "permission_error", "AI_AUTH_ERROR"],
    [404, "not_found_error", "AI_ERROR"],
    [408, "timeout_error", "AI_TIMEOUT"],
    [413, "request_too_large", "AI_ERROR"],
    [429, "rate_limit_error", "AI_RATE_LIMITED"],
    [500, "api_error", "AI_ERROR"],
    [502, "api_error", "AI_ERROR"],
    [503, "api_error", "AI_ERROR"],
    [529, "overloaded_error", "AI_OVERLOADED"]
  ]

  it("maps each SDK error class and status to its code, with a message written for users", () => {
    for (const [status, type, code] of byStatus) {
      const error = toClaudeError(apiError(status, type))
      expect({ status, code: error.code }).toEqual({ status, code })
      expect(error).toBeInstanceOf(ClaudeError)
      expectSafe(error)
    }
  })

  it("maps a mid-stream error event (no status) by its type", () => {
    const body = (type: string) => ({ type: "error", error: { type, message: RAW } })
    const midStream = (type: string) => new Anthropic.APIError(undefined, body(type), undefined, new Headers(), type as never)
    expect(toClaudeError(midStream("overloaded_error")).code).toBe("AI_OVERLOADED")
    expect(toClaudeError(midStream("rate_limit_error")).code).toBe("AI_RATE_LIMITED")
    expect(toClaudeError(midStream("api_error")).code).toBe("AI_ERROR")
    expectSafe(toClaudeError(midStream("overloaded_error")))
  })

  it("maps connection failures, timeouts, aborts and non-SDK throws", () => {
    expect(toClaudeError(new Anthropic.APIConnectionTimeoutError({ message: RAW })).code).toBe("AI_TIMEOUT")
    expect(toClaudeError(new Anthropic.APIConnectionError({ message: RAW })).code).toBe("AI_ERROR")
    expect(toClaudeError(new Anthropic.APIUserAbortError({ message: RAW })).code).toBe("AI_ERROR")
    expect(toClaudeError(new TypeError(RAW)).code).toBe("AI_ERROR")
    expect(toClaudeError(RAW).code).toBe("AI_ERROR")
    expect(toClaudeError(undefined).code).toBe("AI_ERROR")
    for (const thrown of [new Anthropic.APIConnectionTimeoutError({ message: RAW }), new Anthropic.APIConnectionError({ message: RAW }), new TypeError(RAW), RAW]) {
      expectSafe(toClaudeError(thrown))
    }
  })

  it("passes a ClaudeError through unchanged", () => {
    const original = new ClaudeError({ code: "AI_TIMEOUT", message: "m", detail: "d", transient: true })
    expect(toClaudeError(original)).toBe(original)
  })

  it("never lets the SDK's words into the message, for any status and text (property)", () => {
    const codes = new Set(["AI_OVERLOADED", "AI_RATE_LIMITED", "AI_TIMEOUT", "AI_AUTH_ERROR", "AI_ERROR"])
    fc.assert(
      fc.property(
        fc.integer({ min: 400, max: 599 }),
        // Types that do not name a code of their own, so the status decides.
        fc.constantFrom("api_error", "invalid_request_error", "not_found_error"),
        fc.string({ minLength: 12, maxLength: 80 }).filter((s) => s.trim().length >= 12),
        (status, type, raw) => {
          const sdkError = Anthropic.APIError.generate(status, { type: "error", error: { type, message: raw } }, undefined, new Headers())
          const error = toClaudeError(sdkError)
          expect(codes.has(error.code)).toBe(true)
          expect(error.message).not.toContain(raw)
          if (status === 529) expect(error.code).toBe("AI_OVERLOADED")
          if (status === 429) expect(error.code).toBe("AI_RATE_LIMITED")
          if (status === 401 || status === 403) expect(error.code).toBe("AI_AUTH_ERROR")
        }
      ),
      { numRuns: 300 }
    )
  })
})
