/**
 * Answers that always finish (issue 11), end to end: the real service and the real
 * `@anthropic-ai/sdk` against the fake Messages API, real WebSockets, and real processes for
 * SIGKILL and SIGTERM. Every answer's text is checked token by token (numbered tokens):
 * nothing missing, nothing repeated, in order; what clients assembled is what is stored.
 * The service-level cases (bounds, seams, validation) are in chatContinuation.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { CONTINUE_INSTRUCTION } from "../src/claude/Continuation.js"
import { claudeChat, eventually, fakeIdle, newProject, TEST_API_KEY } from "./support/ChatApp.js"
import { type ChatClient, connect, type MessageComplete } from "./support/ChatClient.js"
import type { FakeRouter } from "./support/FakeRouter.js"
import { FakeRouterScoped } from "./support/FakeRouter.js"
import { assembled, chunksOf, directSql, expectTokens, messageRow, numberedChunks, seenChunk, startAnswer } from "./support/Reliability.js"
import { awaitExit, spawnHealthyService } from "./support/ServiceProcess.js"
import { freshDatabase } from "./support/TestDatabase.js"

/** The chat requests' last two turns: a continuation ends with [assistant: partial, user: instruction]. */
const lastTurns = (fake: FakeRouter, index: number) => fake.chatRequests()[index]?.messages.slice(-2)

const complete = (client: ChatClient, messageId: string) =>
  client.next(
    (e): e is MessageComplete => e.type === "message_complete" && e.messageId === messageId,
    30_000,
    `the message_complete of ${messageId}`
  )

describe("continuation through the real SDK", () => {
  it.scopedLive("max_tokens twice, then end_turn: one answer, seq and offset continue, the text exact and stored", () =>
    Effect.gen(function* () {
      const [a, b, c] = [numberedChunks(5, "a"), numberedChunks(5, "b"), numberedChunks(5, "c")]
      const { fake, app, client } = yield* claudeChat({
        env: { CLAUDE_MAX_CONTINUATIONS: "3" },
        replies: [
          { kind: "text", chunks: a, stopReason: "max_tokens" },
          { kind: "text", chunks: b, stopReason: "max_tokens" },
          { kind: "text", chunks: c }
        ]
      })
      const start = yield* startAnswer(client, "Write the whole app")
      const end = yield* complete(client, start.messageId)
      const chunks = chunksOf(client, start.messageId)
      expect(chunks.map((chunk) => chunk.seq)).toEqual(chunks.map((_, i) => i + 1))
      expectTokens(assembled(chunks), a, b, c)
      expect(end).toMatchObject({ status: "complete", stopReason: "end_turn", continuations: 2, fullContent: assembled(chunks) })
      expect(client.events.filter((e) => e.type === "message_start")).toHaveLength(1)
      expect(lastTurns(fake, 1)).toEqual([
        { role: "assistant", content: a.join("") },
        { role: "user", content: CONTINUE_INSTRUCTION }
      ])
      expect(lastTurns(fake, 2)?.[0]).toEqual({ role: "assistant", content: [...a, ...b].join("") })
      const sql = yield* directSql(app.databaseUrl)
      expect(yield* messageRow(sql, start.messageId)).toEqual({ status: "complete", content: assembled(chunks) })
    }))

  it.scopedLive("the bound: past CLAUDE_MAX_CONTINUATIONS the answer completes with stopReason max_tokens", () =>
    Effect.gen(function* () {
      const { fake, client } = yield* claudeChat({
        env: { CLAUDE_MAX_CONTINUATIONS: "1" },
        replies: [
          { kind: "text", chunks: ["one "], stopReason: "max_tokens" },
          { kind: "text", chunks: ["two "], stopReason: "max_tokens" },
          { kind: "text", chunks: ["never"] }
        ]
      })
      const start = yield* startAnswer(client, "Go")
      const end = yield* complete(client, start.messageId)
      expect(end).toMatchObject({ status: "complete", stopReason: "max_tokens", continuations: 1, fullContent: "one two " })
      expect(fake.chatRequests()).toHaveLength(2)
    }))

  it.scopedLive("a mid-stream overloaded_error and a reset are continued (CLAUDE_STREAM_RETRIES); the text stays exact", () =>
    Effect.gen(function* () {
      const [a, b, c] = [numberedChunks(4, "a"), numberedChunks(4, "b"), numberedChunks(4, "c")]
      const { fake, client } = yield* claudeChat({
        env: { CLAUDE_STREAM_RETRIES: "2" },
        replies: [
          { kind: "midStreamError", chunks: a, errorType: "overloaded_error" },
          { kind: "socketReset", chunks: b },
          { kind: "text", chunks: c }
        ]
      })
      const start = yield* startAnswer(client, "Go on")
      const end = yield* complete(client, start.messageId)
      expectTokens(assembled(chunksOf(client, start.messageId)), a, b, c)
      expect(end).toMatchObject({ status: "complete", continuations: 2 })
      expect(client.events.filter((e) => e.type === "error")).toEqual([])
      expect(lastTurns(fake, 2)).toEqual([
        { role: "assistant", content: [...a, ...b].join("") },
        { role: "user", content: CONTINUE_INSTRUCTION }
      ])
    }))

  it.scopedLive("`continue` after a cancel: the same messageId streams on from its text to message_complete", () =>
    Effect.gen(function* () {
      const [a, b] = [numberedChunks(200, "a"), numberedChunks(5, "b")]
      const { fake, app, project, client } = yield* claudeChat({
        replies: [{ kind: "text", chunks: a, chunkDelayMs: 20 }, { kind: "text", chunks: b }]
      })
      const start = yield* startAnswer(client, "Long one")
      yield* seenChunk(client, start.messageId, 3)
      yield* client.send({ type: "cancel" })
      const cancelled = yield* complete(client, start.messageId)
      expect(cancelled.status).toBe("cancelled")
      yield* fakeIdle(fake)

      const other = yield* connect(app.wsUrl, project.id)
      yield* client.send({ type: "continue", messageId: start.messageId })
      const end = yield* complete(client, start.messageId)
      expect(end).toMatchObject({ status: "complete", continuations: 1 })
      const text = assembled(chunksOf(client, start.messageId))
      expect(end.fullContent).toBe(text)
      expectTokens(text, a.slice(0, cancelled.fullContent.split(" ").length - 1), b)
      const resumed = other.events.find((e) => e.type === "message_start")
      expect(resumed).toMatchObject({ messageId: start.messageId, resumed: true })
      expect(assembled(chunksOf(other, start.messageId))).toBe(text)
      const sql = yield* directSql(app.databaseUrl)
      expect(yield* messageRow(sql, start.messageId)).toEqual({ status: "complete", content: text })

      // A complete answer cannot be continued.
      yield* client.send({ type: "continue", messageId: start.messageId })
      const refused = yield* client.next((e) => e.type === "error", 10_000, "the refusal")
      expect(refused).toMatchObject({ code: "VALIDATION_ERROR" })
    }))
})

describe("answers cut by the process, continued at the next start", () => {
  const serviceEnv = (databaseUrl: string, fakeUrl: string, extra: Record<string, string> = {}) => ({
    DATABASE_URL: databaseUrl,
    CLAUDE_API_KEY: TEST_API_KEY,
    CLAUDE_BASE_URL: fakeUrl,
    CLAUDE_MAX_RETRIES: "0",
    CHECKPOINT_INTERVAL_MS: "100",
    LOG_LEVEL: "info",
    ...extra
  })

  for (const how of ["SIGKILL", "SIGTERM past the grace period"] as const) {
    it.scopedLive(`${how}: the next start continues the answer from its stored text to complete`, () =>
      Effect.gen(function* () {
        const [a, b] = [numberedChunks(400, "a"), numberedChunks(6, "b")]
        const fake = yield* FakeRouterScoped()
        fake.enqueueChat({ kind: "text", chunks: a, chunkDelayMs: 25 })
        const database = yield* freshDatabase
        const sql = yield* directSql(database)
        const env = serviceEnv(database, fake.url, { SHUTDOWN_GRACE_SECONDS: "1" })

        const first = yield* spawnHealthyService(env)
        const project = yield* newProject(first, "Resume me")
        const client = yield* connect(first.wsUrl, project.id)
        const start = yield* startAnswer(client, "Build me a big app")
        yield* eventually(
          "a checkpoint stored part of the answer",
          messageRow(sql, start.messageId),
          (row) => row?.status === "streaming" && row.content.length > 0,
          30_000
        )
        first.signal(how === "SIGKILL" ? "SIGKILL" : "SIGTERM")
        yield* awaitExit(first, 45_000)
        const stored = (yield* messageRow(sql, start.messageId))!.content
        expect(["streaming", "interrupted"]).toContain((yield* messageRow(sql, start.messageId))?.status)
        yield* fakeIdle(fake)

        fake.enqueueChat({ kind: "text", chunks: b, chunkDelayMs: 200 })
        const second = yield* spawnHealthyService(env)
        const rejoined = yield* connect(second.wsUrl, project.id)
        const end = yield* complete(rejoined, start.messageId)
        expect(end).toMatchObject({ status: "complete", continuations: 1 })
        const storedTokens = stored.split(" ").filter((t) => t !== "").length
        expectTokens(end.fullContent, a.slice(0, storedTokens), b)
        expect(stored.length, "it went on from the last checkpoint").toBeGreaterThan(0)
        const text = assembled(chunksOf(rejoined, start.messageId))
        expect(text).toBe(end.fullContent)
        expect(rejoined.events.find((e) => e.type === "message_start")).toMatchObject({ resumed: true })
        expect(yield* messageRow(sql, start.messageId)).toEqual({ status: "complete", content: end.fullContent })
        expect(lastTurns(fake, 1)).toEqual([
          { role: "assistant", content: stored },
          { role: "user", content: CONTINUE_INSTRUCTION }
        ])
        const logged = yield* eventually(
          "the restart logs the answer it continues",
          Effect.sync(() => second.logs().find((line) => line["message"] === "continuing an answer interrupted by a restart")),
          (line) => line !== undefined,
          20_000
        )
        expect(logged?.["messageId"], "the restart says which answer it continues").toBe(start.messageId)
        // Logged after clients are told: wait for the line rather than race it.
        const finished = yield* eventually(
          "the service logs the end of the answer",
          Effect.sync(() => second.logs().find((line) => line["message"] === "answer finished" && line["messageId"] === start.messageId)),
          (line) => line !== undefined,
          20_000
        )
        expect(finished).toMatchObject({ status: "complete", continuations: 1 })
        second.signal("SIGTERM")
        expect(yield* awaitExit(second)).toStrictEqual({ code: 0, signal: null })
      }), 120_000)
  }
})
