/**
 * Claude's failures as the chat client sees them: each one ends the answer with an `error`
 * event carrying the PRD's code and the answer's messageId, stores what was received with
 * status `error`, leaks nothing of what the API said (nor the key), and leaves the project
 * ready for the next message, whose context the fake accepts (it rejects invalid contexts
 * with 400 as the real API does, so a successful next answer proves the context valid).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { type ChatClient, connect } from "./support/ChatClient.js"
import { type ClaudeChat, claudeChat, fakeIdle, getProject, storedMessages, TEST_API_KEY } from "./support/ChatApp.js"
import type { FakeReply } from "./support/FakeAnthropic.js"
import type { RecordedBody } from "./support/FakeRouter.js"

const TEST_TIMEOUT = 60_000

/** What the API "said": must never reach a client. */
const RAW_API_TEXT = `upstream detail for key ${TEST_API_KEY} request req_secret_42`

/** The context a valid Messages API request must have (the fake enforces it too). */
const expectValidContext = (body: RecordedBody | undefined) => {
  expect(body).toBeDefined()
  const messages = body?.messages ?? []
  expect(messages.length).toBeGreaterThan(0)
  expect(messages[0]?.role).toBe("user")
  expect(messages.at(-1)?.role).toBe("user")
  messages.forEach((message, i) => {
    expect(typeof message.content === "string" && message.content.trim().length > 0).toBe(true)
    if (i > 0) expect(message.role).not.toBe(messages[i - 1]?.role)
  })
}

/** No frame a client received carries the key or the API's own words. */
const expectNothingLeaked = (client: ChatClient) => {
  for (const frame of client.frames) {
    expect(frame).not.toContain(TEST_API_KEY)
    expect(frame).not.toContain("req_secret_42")
    expect(frame).not.toContain("upstream detail")
  }
}

/**
 * Sends a message answered by `reply`, checks the error event and what was stored, then
 * sends another message and checks it is answered with a valid context.
 */
const failsThenRecovers = ({ app, fake, client, project }: ClaudeChat, reply: FakeReply, code: string, partial = "") =>
  Effect.gen(function* () {
    // Another tab on the project is told the same end.
    const other = yield* connect(app.wsUrl, project.id)
    fake.enqueueChat(reply)
    const failed = yield* client.ask(`A request that meets ${code}`)
    const seenByOther = yield* other.untilComplete(failed.start.messageId)
    expect(seenByOther.end).toStrictEqual(failed.end)
    expect(failed.end).toStrictEqual({
      type: "error",
      code,
      error: expect.stringMatching(/\S/),
      messageId: failed.start.messageId,
      timestamp: expect.any(String)
    })
    expect(failed.chunks.map((c) => c.content).join("")).toBe(partial)
    expect(client.events.some((e) => e.type === "message_complete" && e.messageId === failed.start.messageId)).toBe(false)

    // Stored with what was received and a status saying it failed.
    const row = (yield* storedMessages(app, project.id)).find((r) => r.id === failed.start.messageId)
    expect(row).toMatchObject({ role: "assistant", status: "error", content: partial, errorCode: code })
    const shown = (yield* getProject(app, project.id)).messages.find((m) => m.id === failed.start.messageId)
    expect(shown).toMatchObject({ status: "error", content: partial })

    // The next message is answered, with a context the API accepts.
    const before = fake.chatRequests().length
    fake.enqueueChat({ kind: "text", chunks: ["Back ", "again."] })
    const next = yield* client.ask(`The message after ${code}`)
    expect(next.end).toMatchObject({ type: "message_complete", status: "complete", fullContent: "Back again." })
    const sent = fake.chatRequests().slice(before).at(-1)
    expectValidContext(sent)
    expect(JSON.stringify(sent?.messages.at(-1)?.content)).toContain(`The message after ${code}`)
    if (partial !== "") expect(JSON.stringify(sent?.messages)).toContain(partial)
    expectNothingLeaked(client)
  })

const httpCases: ReadonlyArray<readonly [string, FakeReply, string]> = [
  ["HTTP 529 overloaded", { kind: "httpError", errorType: "overloaded_error", retryAfterSeconds: 0, message: RAW_API_TEXT }, "AI_OVERLOADED"],
  ["HTTP 429 rate limited", { kind: "httpError", errorType: "rate_limit_error", retryAfterSeconds: 0, message: RAW_API_TEXT }, "AI_RATE_LIMITED"],
  ["HTTP 401 bad key", { kind: "httpError", errorType: "authentication_error", message: RAW_API_TEXT }, "AI_AUTH_ERROR"],
  ["HTTP 403 forbidden", { kind: "httpError", errorType: "permission_error", message: RAW_API_TEXT }, "AI_AUTH_ERROR"],
  ["HTTP 500 server error", { kind: "httpError", errorType: "api_error", retryAfterSeconds: 0, message: RAW_API_TEXT }, "AI_ERROR"],
  ["HTTP 400 invalid request", { kind: "httpError", errorType: "invalid_request_error", message: RAW_API_TEXT }, "AI_ERROR"]
]

describe.concurrent("chat: Claude's errors become error events", () => {
  for (const [name, reply, code] of httpCases) {
    it.scopedLive(`${name} → ${code}, and the next message works`, () =>
      Effect.gen(function* () {
        const chat = yield* claudeChat({ title: "Errors", env: { CLAUDE_MAX_RETRIES: "0" } })
        yield* failsThenRecovers(chat, reply, code)
        // CLAUDE_MAX_RETRIES=0: one request for the failure, one for the next message.
        expect(chat.fake.chatRequests()).toHaveLength(2)
      }), TEST_TIMEOUT)
  }

  it.scopedLive("a mid-stream overloaded_error → AI_OVERLOADED with the messageId; the partial answer is stored as error", () =>
    Effect.gen(function* () {
      const chat = yield* claudeChat({ title: "Mid-stream" })
      yield* failsThenRecovers(
        chat,
        { kind: "midStreamError", chunks: ["Here is ", "half an answer"], chunkDelayMs: 10, message: RAW_API_TEXT },
        "AI_OVERLOADED",
        "Here is half an answer"
      )
      // No retry after a stream has started; the fake ended the stream itself (no abort).
      expect(chat.fake.chatRequests()).toHaveLength(2)
      yield* fakeIdle(chat.fake)
      expect(chat.fake.fake.abortedStreams).toBe(0)
    }), TEST_TIMEOUT)

  it.scopedLive("a socket reset mid-stream → AI_ERROR; the partial answer is stored and the next message works", () =>
    Effect.gen(function* () {
      const chat = yield* claudeChat({ title: "Reset" })
      yield* failsThenRecovers(chat, { kind: "socketReset", chunks: ["Cut ", "short"], chunkDelayMs: 10 }, "AI_ERROR", "Cut short")
    }), TEST_TIMEOUT)

  it.scopedLive("a 529 before the stream starts is retried (retry-after honoured) and the answer streams normally", () =>
    Effect.gen(function* () {
      const { fake, client } = yield* claudeChat({ title: "Retry", env: { CLAUDE_MAX_RETRIES: "1" } })
      fake.enqueueChat(
        { kind: "httpError", errorType: "overloaded_error", retryAfterSeconds: 0 },
        { kind: "text", chunks: ["Second ", "time ", "lucky"] }
      )
      const answer = yield* client.ask("Try twice")
      expect(answer.end).toMatchObject({ type: "message_complete", status: "complete", fullContent: "Second time lucky" })
      expect(fake.chatRequests()).toHaveLength(2)
      expect(client.events.filter((e) => e.type === "error")).toEqual([])
    }), TEST_TIMEOUT)

  it.scopedLive("several failures in a row still leave a valid context (failed turns merge, empty answers are left out)", () =>
    Effect.gen(function* () {
      const { fake, client } = yield* claudeChat({ title: "Many failures", env: { CLAUDE_MAX_RETRIES: "0" } })
      fake.enqueueChat(
        { kind: "httpError", errorType: "overloaded_error", retryAfterSeconds: 0 },
        { kind: "httpError", errorType: "api_error" },
        { kind: "midStreamError", chunks: ["partial"], chunkDelayMs: 10 },
        { kind: "text", chunks: ["Finally."] }
      )
      for (const text of ["first try", "second try", "third try"]) {
        const failed = yield* client.ask(text)
        expect({ text, end: failed.end.type }).toEqual({ text, end: "error" })
      }
      const ok = yield* client.ask("fourth try")
      expect(ok.end).toMatchObject({ type: "message_complete", fullContent: "Finally." })
      const sent = fake.chatRequests().at(-1)
      expectValidContext(sent)
      const all = JSON.stringify(sent?.messages)
      for (const text of ["first try", "second try", "third try", "partial", "fourth try"]) expect(all).toContain(text)
      expectNothingLeaked(client)
    }), TEST_TIMEOUT)

  // The SDK's MessageStream iterator drops an error that arrives while its reader is behind
  // (events still queued): the iteration just ends. Here the error (or the cut) arrives in
  // the same read as the last delta, with no delay, which is how it happens under load.
  const immediateFailures: ReadonlyArray<readonly [string, FakeReply, string, string]> = [
    ["an overloaded_error right after one chunk", { kind: "midStreamError", chunks: ["partial"] }, "AI_OVERLOADED", "partial"],
    ["an overloaded_error right after several chunks", { kind: "midStreamError", chunks: ["a ", "b ", "c"] }, "AI_OVERLOADED", "a b c"],
    ["a socket reset right after the chunks", { kind: "socketReset", chunks: ["cut ", "here"] }, "AI_ERROR", "cut here"]
  ]
  for (const [name, reply, code, partial] of immediateFailures) {
    it.scopedLive(`${name} is still an error (${code}), never a complete answer`, () =>
      Effect.gen(function* () {
        const chat = yield* claudeChat({ title: "Immediate failure", env: { CLAUDE_MAX_RETRIES: "0" } })
        yield* failsThenRecovers(chat, reply, code, partial)
      }), TEST_TIMEOUT)
  }
})

// Not concurrent: the idle watchdog runs on real time.
describe("chat: a stalled answer", () => {
  it.scopedLive("a stalled stream → AI_TIMEOUT after CLAUDE_IDLE_TIMEOUT_SECONDS, and the upstream request is aborted", () =>
    Effect.gen(function* () {
      // 2 s: the first chunk is sent at once, so it surely arrives before the watchdog fires.
      const { fake, app, project, client } = yield* claudeChat({ title: "Stall", env: { CLAUDE_IDLE_TIMEOUT_SECONDS: "2" } })
      fake.enqueueChat({ kind: "stall", chunks: ["Thinking about it"] })
      const failed = yield* client.ask("Take your time")
      expect(failed.end).toMatchObject({ type: "error", code: "AI_TIMEOUT", messageId: failed.start.messageId })
      yield* fakeIdle(fake)
      expect(fake.fake.abortedStreams).toBe(1)
      const row = (yield* storedMessages(app, project.id)).find((r) => r.id === failed.start.messageId)
      expect(row).toMatchObject({ status: "error", content: "Thinking about it", errorCode: "AI_TIMEOUT" })

      fake.enqueueChat({ kind: "text", chunks: ["Done."] })
      const next = yield* client.ask("Are you there?")
      expect(next.end).toMatchObject({ type: "message_complete", fullContent: "Done." })
      expectValidContext(fake.chatRequests().at(-1))
      expectNothingLeaked(client)
    }), TEST_TIMEOUT)
})
