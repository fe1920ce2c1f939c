/**
 * Chat over WebSocket (issue 3), end to end: the real service on a fresh PostgreSQL, a real
 * WebSocket client, and the real Anthropic SDK talking to the fake Messages API.
 *
 * The PRD's acceptance tests (AC-002 to AC-006, AC-009), the handshake, bad frames, one
 * answer per project, several tabs, the heartbeat and titles. Claude's failures are in
 * chatErrors.test.ts, the demo model in demoModel.test.ts.
 *
 * Tests run with the live clock (`it.scopedLive`): the service's own timers (heartbeat,
 * checkpoints) must really run. Waits are liveness bounds only.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { randomUUID } from "node:crypto"
import { SYSTEM_PROMPT } from "../src/claude/Claude.js"
import { connect, refused, type MessageChunk } from "./support/ChatClient.js"
import {
  claudeChat,
  claudeProject,
  countMessages,
  eventually,
  expectedBlock,
  getProject,
  newProject,
  startClaudeApp,
  storedMessages,
  TEST_API_KEY
} from "./support/ChatApp.js"
import { gate } from "./support/FakeAnthropic.js"
import { FakeRouterScoped } from "./support/FakeRouter.js"
import { SteppedAnthropicScoped } from "./support/SteppedAnthropic.js"
import { startTestApp } from "./support/TestApp.js"
import { request, sendJson } from "./support/Http.js"
import type { TestApp } from "./support/TestApp.js"
import { decodeExact, WireError } from "./support/Wire.js"

const TEST_TIMEOUT = 60_000

/** Chunks of a Claude-like answer with a python block; one carries an emoji (2 UTF-16 units). */
const INVENTORY_CHUNKS = [
  "I'll create an inventory tracker for you 📦.\n\n",
  "```python\nclass Inventory",
  "Item:\n    def __init__(self, name, quantity=0):\n",
  "        self.name = name\n        self.quantity = quantity\n```\n",
  "\nSave it as `inventory.py` and run it."
] as const
const INVENTORY_TEXT = INVENTORY_CHUNKS.join("")
const INVENTORY_CODE = "class InventoryItem:\n    def __init__(self, name, quantity=0):\n        self.name = name\n        self.quantity = quantity\n"

const SEARCH_CHUNKS = ["Here is the search:\n", "```python\ndef search(items, text):\n    return [i for i in items if text in i.name]\n```\n"] as const

/** seq runs 1..n and each offset is the number of UTF-16 units before the chunk. */
const expectChunkSequence = (chunks: ReadonlyArray<MessageChunk>, expected: ReadonlyArray<string>) => {
  expect(chunks.map((c) => c.content)).toEqual(expected)
  expect(chunks.map((c) => c.seq)).toEqual(expected.map((_, i) => i + 1))
  expect(chunks.map((c) => c.offset)).toEqual(expected.map((_, i) => expected.slice(0, i).join("").length))
}

const later = (a: string, b: string) => new Date(a).getTime() > new Date(b).getTime()

/**
 * Counts, in the database itself, the statements that set a generated title (the service's
 * conditional UPDATE, whether or not it changed a row): installs a statement-level trigger
 * and returns an effect reading the count.
 */
const countTitleWrites = (app: TestApp) =>
  Effect.gen(function* () {
    yield* app.sql.unsafe(`
      CREATE TABLE IF NOT EXISTS test_title_writes (n BIGSERIAL, query TEXT);
      CREATE OR REPLACE FUNCTION test_log_title_write() RETURNS trigger AS $$
      BEGIN
        IF current_query() LIKE '%title_source = ''generated''%' THEN
          INSERT INTO test_title_writes (query) VALUES (current_query());
        END IF;
        RETURN NULL;
      END; $$ LANGUAGE plpgsql;
      CREATE TRIGGER test_log_title_write AFTER UPDATE ON projects FOR EACH STATEMENT EXECUTE FUNCTION test_log_title_write();
    `).pipe(Effect.orDie)
    return app.sql<{ n: string }>`SELECT count(*)::text AS n FROM test_title_writes`.pipe(
      Effect.map((rows) => Number(rows[0]?.n ?? 0)),
      Effect.orDie
    )
  })

describe.concurrent("chat: the PRD's acceptance tests", () => {
  it.scopedLive("AC-002..006, AC-009: a conversation streams, is stored, carries its context and survives a reconnect", () =>
    Effect.gen(function* () {
      const { fake, app, project } = yield* claudeProject({
        titleReply: { kind: "text", chunks: ["Inventory Tracker"] },
        env: { CLAUDE_MODEL: "claude-test-sonnet", CLAUDE_TITLE_MODEL: "claude-test-haiku", CLAUDE_MAX_TOKENS: "1234" }
      })

      // AC-002: the connection opens and stays open; ping → pong, several times.
      const client = yield* connect(app.wsUrl, project.id)
      for (let i = 0; i < 3; i++) {
        yield* client.ping()
        expect(client.isOpen).toBe(true)
      }

      // AC-003/004: start → chunks in order → complete with a python code block.
      fake.enqueueChat({ kind: "text", chunks: INVENTORY_CHUNKS, chunkDelayMs: 10 })
      const first = yield* client.ask("Build me an inventory tracker")
      expect(first.start.messageId).not.toBe(first.start.userMessageId)
      expect(first.start.resumed).toBeUndefined()
      expectChunkSequence(first.chunks, INVENTORY_CHUNKS)
      expect(first.end).toStrictEqual({
        type: "message_complete",
        messageId: first.start.messageId,
        fullContent: INVENTORY_TEXT,
        codeBlocks: [expectedBlock(INVENTORY_TEXT, "```python", "python", INVENTORY_CODE)],
        status: "complete",
        stopReason: "end_turn",
        continuations: 0,
        // The first turn writes its whole prompt to the (emulated) prompt cache; one output token a chunk.
        usage: { inputTokens: 0, outputTokens: INVENTORY_CHUNKS.length, cacheReadInputTokens: 0, cacheCreationInputTokens: expect.any(Number) },
        timestamp: expect.any(String)
      })
      // Events are in order: start, every chunk, then the end (titles may come in between).
      const order = client.events.filter((e) => "messageId" in e && e.messageId === first.start.messageId).map((e) => e.type)
      expect(order).toEqual(["message_start", ...INVENTORY_CHUNKS.map(() => "message_chunk"), "message_complete"])

      // The request Claude got: the PRD's system prompt, the configured model and max_tokens, streaming.
      const [firstRequest] = fake.chatRequests()
      expect(firstRequest).toMatchObject({
        model: "claude-test-sonnet",
        max_tokens: 1234,
        stream: true,
        system: SYSTEM_PROMPT,
        messages: [{ role: "user", content: "Build me an inventory tracker" }]
      })
      expect(SYSTEM_PROMPT).toMatch(/^You are Go Chat, an AI assistant that helps users build applications by writing code\.\n/)
      expect(SYSTEM_PROMPT).toMatch(/Focus on creating working, practical solutions\.$/)

      // The title comes from the title model (FR-015).
      const updated = yield* client.seen("project_updated")
      expect(updated).toMatchObject({ projectId: project.id, title: "Inventory Tracker" })
      expect(fake.titleRequests()).toHaveLength(1)
      expect(fake.titleRequests()[0]).toMatchObject({ model: "claude-test-haiku" })
      expect(JSON.stringify(fake.titleRequests()[0]?.messages)).toContain("Build me an inventory tracker")

      // AC-006: both messages are stored, the answer under its messageId with the same content and blocks.
      const stored = yield* getProject(app, project.id)
      expect(stored.title).toBe("Inventory Tracker")
      expect(stored.messages).toStrictEqual([
        { id: first.start.userMessageId, role: "user", content: "Build me an inventory tracker", status: "complete", createdAt: expect.any(String) },
        {
          id: first.start.messageId,
          role: "assistant",
          content: INVENTORY_TEXT,
          status: "complete",
          codeBlocks: first.end.type === "message_complete" ? first.end.codeBlocks : [],
          stopReason: "end_turn",
          continuations: 0,
          usage: first.end.type === "message_complete" ? first.end.usage : null,
          createdAt: expect.any(String)
        }
      ])

      // AC-005: the second message is sent with the first exchange and the system prompt.
      fake.enqueueChat({ kind: "text", chunks: SEARCH_CHUNKS })
      const second = yield* client.ask("Add a search feature")
      expect(second.end).toMatchObject({ type: "message_complete", status: "complete", fullContent: SEARCH_CHUNKS.join("") })
      expect(fake.chatRequests()).toHaveLength(2)
      expect(fake.chatRequests()[1]).toMatchObject({
        model: "claude-test-sonnet",
        max_tokens: 1234,
        system: SYSTEM_PROMPT,
        messages: [
          { role: "user", content: "Build me an inventory tracker" },
          { role: "assistant", content: INVENTORY_TEXT },
          { role: "user", content: "Add a search feature" }
        ]
      })
      expect(fake.chatRequests()[1]?.messages).toHaveLength(3)
      // One title, for the first message only.
      expect(fake.titleRequests()).toHaveLength(1)

      // AC-009: after a disconnect, a new connection sees the whole history and continues it.
      yield* client.close()
      const again = yield* connect(app.wsUrl, project.id)
      yield* again.ping()
      expect(again.events.map((e) => e.type)).toEqual(["pong"])
      const history = yield* getProject(app, project.id)
      expect(history.messages.map((m) => [m.role, m.content, m.status])).toEqual([
        ["user", "Build me an inventory tracker", "complete"],
        ["assistant", INVENTORY_TEXT, "complete"],
        ["user", "Add a search feature", "complete"],
        ["assistant", SEARCH_CHUNKS.join(""), "complete"]
      ])
      const third = yield* again.ask("Now add a delete button")
      expect(third.end).toMatchObject({ type: "message_complete", status: "complete" })
      expect(fake.chatRequests()[2]?.messages).toEqual([
        { role: "user", content: "Build me an inventory tracker" },
        { role: "assistant", content: INVENTORY_TEXT },
        { role: "user", content: "Add a search feature" },
        { role: "assistant", content: SEARCH_CHUNKS.join("") },
        { role: "user", content: "Now add a delete button" }
      ])
      expect(again.violations).toEqual([])
    }), TEST_TIMEOUT)

  /** What Claude is sent with the 4th question, after three exchanges, at CONTEXT_MESSAGE_LIMIT=`limit`. */
  const contextOfFourthQuestion = (limit: number) =>
    Effect.gen(function* () {
      const { fake, client } = yield* claudeChat({ title: `Limit ${limit}`, env: { CONTEXT_MESSAGE_LIMIT: String(limit) } })
      for (const text of ["one", "two", "three"]) {
        fake.enqueueChat({ kind: "text", chunks: [`answer ${text}`] })
        yield* client.ask(text)
      }
      fake.enqueueChat({ kind: "text", chunks: ["answer four"] })
      yield* client.ask("four")
      return fake.chatRequests().at(-1)?.messages
    })
  const lastExchangeAndFour = [
    { role: "user", content: "three" },
    { role: "assistant", content: "answer three" },
    { role: "user", content: "four" }
  ]

  it.scopedLive("keeps only the last CONTEXT_MESSAGE_LIMIT messages in what Claude is sent", () =>
    Effect.gen(function* () {
      // Stored before the 4th answer: one, answer one, two, answer two, three, answer three, four.
      // CONTEXT_MESSAGE_LIMIT=3 keeps: three, answer three, four.
      expect(yield* contextOfFourthQuestion(3)).toEqual(lastExchangeAndFour)
    }), TEST_TIMEOUT)

  it.scopedLive("counts the new message in CONTEXT_MESSAGE_LIMIT, and starts the context at a question", () =>
    Effect.gen(function* () {
      // The last 4 stored turns are answer two, three, answer three, four; a context never begins
      // with an answer, so "answer two" is left out too (one turn more would bring "two" in).
      expect(yield* contextOfFourthQuestion(4)).toEqual(lastExchangeAndFour)
    }), TEST_TIMEOUT)
  it.scopedLive("drops the oldest messages when CONTEXT_TOKEN_BUDGET is exceeded, always keeping the new one", () =>
    Effect.gen(function* () {
      // Room for the system prompt and ~100 tokens (400 characters) of conversation.
      const budget = Math.ceil(SYSTEM_PROMPT.length / 4) + 100
      const { fake, client } = yield* claudeChat({ title: "Budget", env: { CONTEXT_TOKEN_BUDGET: String(budget) } })
      const long = "Please remember this: " + "x".repeat(800)
      fake.enqueueChat({ kind: "text", chunks: ["ok"] })
      yield* client.ask(long)
      // Alone over the budget, the new message is still sent.
      expect(fake.chatRequests()[0]?.messages).toEqual([{ role: "user", content: long }])
      fake.enqueueChat({ kind: "text", chunks: ["fine"] })
      yield* client.ask("short one")
      expect(fake.chatRequests()[1]?.messages).toEqual([{ role: "user", content: "short one" }])
      expect(fake.chatRequests()[1]?.system).toBe(SYSTEM_PROMPT)
    }), TEST_TIMEOUT)
})

describe.concurrent("chat: answers shaped as the real API may send them", () => {
  it.scopedLive("a second content block, pings between chunks, cache usage and a non-end_turn stop reason: one answer, stored whole", () =>
    Effect.gen(function* () {
      const { fake, app, project, client } = yield* claudeChat({ title: "Shapes" })
      const chunks = Array.from({ length: 12 }, (_, i) => `part${i} `)
      fake.enqueueChat({
        kind: "text",
        chunks,
        pingEvery: 2,
        secondBlock: ["and ", "more."],
        stopReason: "stop_sequence",
        cacheCreationInputTokens: 1000,
        cacheReadInputTokens: 500
      })
      const answer = yield* client.ask("Tell me everything")
      const text = chunks.join("") + "and more."
      expect(answer.chunks.map((c) => c.content).join("")).toBe(text)
      expect(answer.end).toMatchObject({ type: "message_complete", status: "complete", fullContent: text, stopReason: "stop_sequence" })
      const row = (yield* storedMessages(app, project.id)).find((r) => r.id === answer.start.messageId)
      expect(row).toMatchObject({ status: "complete", content: text, stopReason: "stop_sequence" })
    }), TEST_TIMEOUT)
})

describe.concurrent("chat: the handshake", () => {
  it.scopedLive("refuses an invalid or missing projectId with 400 VALIDATION_ERROR and an unknown project with 404", () =>
    Effect.gen(function* () {
      const fake = yield* FakeRouterScoped()
      const app = yield* startClaudeApp(fake)
      for (const query of ["projectId=not-a-uuid", "projectId=", "", "projectId=1%27%3B%20DROP%20TABLE%20projects%3B--"]) {
        const refusal = yield* refused(app.wsUrl, "", { query })
        expect({ query, status: refusal.status, body: refusal.json }).toStrictEqual({
          query,
          status: 400,
          body: { error: expect.stringMatching(/\S/), code: "VALIDATION_ERROR" }
        })
        expect(refusal.contentType).toMatch(/^application\/json/)
        decodeExact(WireError, refusal.json)
      }

      const unknown = yield* refused(app.wsUrl, randomUUID())
      expect({ status: unknown.status, body: unknown.json }).toStrictEqual({
        status: 404,
        body: { error: expect.stringMatching(/\S/), code: "PROJECT_NOT_FOUND" }
      })

      // A deleted project is unknown too.
      const doomed = yield* newProject(app)
      expect((yield* request(`${app.url}/api/projects/${doomed.id}`, { method: "DELETE" })).status).toBe(204)
      const gone = yield* refused(app.wsUrl, doomed.id)
      expect(gone.status).toBe(404)
      expect(gone.json).toMatchObject({ code: "PROJECT_NOT_FOUND" })
      expect(fake.requests).toHaveLength(0)
    }), TEST_TIMEOUT)

  it.scopedLive("with CORS_ORIGINS set, refuses another Origin with 403 FORBIDDEN_ORIGIN and accepts an allowed one", () =>
    Effect.gen(function* () {
      const { app, project } = yield* claudeProject({ env: { CORS_ORIGINS: "http://allowed.test" } })

      const evil = yield* refused(app.wsUrl, project.id, { origin: "http://evil.test" })
      expect({ status: evil.status, body: evil.json }).toStrictEqual({
        status: 403,
        body: { error: expect.stringMatching(/\S/), code: "FORBIDDEN_ORIGIN" }
      })

      const allowed = yield* connect(app.wsUrl, project.id, { origin: "http://allowed.test" })
      yield* allowed.ping()
      expect(allowed.isOpen).toBe(true)
    }), TEST_TIMEOUT)
})

describe.concurrent("chat: bad frames", () => {
  it.scopedLive("answers each bad frame with its error code, stores nothing, and the connection keeps working", () =>
    Effect.gen(function* () {
      const { fake, app, project, client } = yield* claudeChat({ title: "Bad frames", env: { MAX_MESSAGE_CHARS: "50" } })
      const frameLimit = 50 * 6 + 4096

      const cases: ReadonlyArray<readonly [string, unknown, string]> = [
        ["invalid JSON", "{\"type\": \"chat_message\", ", "INVALID_MESSAGE"],
        ["plain text", "hello", "INVALID_MESSAGE"],
        ["JSON null", "null", "INVALID_MESSAGE"],
        ["a JSON string", "\"ping\"", "INVALID_MESSAGE"],
        ["a JSON array", "[{\"type\":\"ping\"}]", "INVALID_MESSAGE"],
        ["an unknown type", { type: "subscribe" }, "INVALID_MESSAGE"],
        ["no type", { content: "Build me an inventory tracker" }, "INVALID_MESSAGE"],
        ["a binary frame", Buffer.from(JSON.stringify({ type: "ping" })), "INVALID_MESSAGE"],
        ["empty content", { type: "chat_message", content: "" }, "VALIDATION_ERROR"],
        ["blank content", { type: "chat_message", content: "  \n\t  " }, "VALIDATION_ERROR"],
        ["numeric content", { type: "chat_message", content: 42 }, "VALIDATION_ERROR"],
        ["null content", { type: "chat_message", content: null }, "VALIDATION_ERROR"],
        ["object content", { type: "chat_message", content: { text: "hi" } }, "VALIDATION_ERROR"],
        ["missing content", { type: "chat_message" }, "VALIDATION_ERROR"],
        ["content over MAX_MESSAGE_CHARS", { type: "chat_message", content: "x".repeat(51) }, "MESSAGE_TOO_LARGE"],
        [
          "a frame over the byte limit",
          JSON.stringify({ type: "chat_message", content: "hi", padding: "y".repeat(frameLimit) }),
          "MESSAGE_TOO_LARGE"
        ],
        ["a non-JSON frame over the byte limit", "z".repeat(frameLimit + 1), "MESSAGE_TOO_LARGE"]
      ]

      for (const [name, frame, code] of cases) {
        yield* client.send(frame)
        const error = yield* client.next((e) => e.type === "error", 10_000, `the error for ${name}`)
        expect({ name, code: error.type === "error" ? error.code : undefined }).toEqual({ name, code })
        expect(error).not.toHaveProperty("messageId")
        // The same connection still answers.
        yield* client.ping()
        expect(client.isOpen).toBe(true)
      }

      // Nothing was stored or started.
      expect(yield* countMessages(app)).toBe(0)
      expect(fake.requests).toHaveLength(0)
      expect(client.events.filter((e) => e.type === "message_start")).toEqual([])
      expect((yield* getProject(app, project.id)).messages).toEqual([])

      // Exactly MAX_MESSAGE_CHARS is fine, and the connection still chats.
      const answer = yield* client.ask("x".repeat(50))
      expect(answer.end).toMatchObject({ type: "message_complete", status: "complete" })
      expect(yield* countMessages(app)).toBe(2)
      expect(client.violations).toEqual([])
    }), TEST_TIMEOUT)
})

describe.concurrent("chat: a project deleted while connected", () => {
  it.scopedLive("tells the connection PROJECT_NOT_FOUND and closes it (4404); a new connection is refused with 404; nothing stored", () =>
    Effect.gen(function* () {
      const { fake, app, project, client } = yield* claudeChat({ title: "Short-lived" })
      expect((yield* request(`${app.url}/api/projects/${project.id}`, { method: "DELETE" })).status).toBe(204)
      const error = yield* client.waitFor("error")
      expect(error.code).toBe("PROJECT_NOT_FOUND")
      expect(yield* client.awaitClose()).toMatchObject({ code: 4404, reason: "project deleted" })
      const again = yield* refused(app.wsUrl, project.id)
      expect(again.status).toBe(404)
      expect(yield* countMessages(app)).toBe(0)
      expect(fake.requests).toHaveLength(0)
    }), TEST_TIMEOUT)
})

describe.concurrent("chat: one answer per project", () => {
  it.scopedLive("refuses a chat_message while an answer streams with BUSY (to the sender only), then accepts the next", () =>
    Effect.gen(function* () {
      const { fake, app, project, client: tabA } = yield* claudeChat({ title: "Busy" })
      const tabB = yield* connect(app.wsUrl, project.id)

      const chunks = ["one ", "two ", "three ", "four ", "five ", "six ", "seven ", "eight ", "nine ", "ten"]
      // Held after the first chunk until both refusals are in: the answer is surely still streaming.
      const resume = gate()
      fake.enqueueChat({ kind: "text", chunks, pauseAfter: 1, resume: resume.promise })
      yield* tabA.chat("First question")
      const start = yield* tabA.waitFor("message_start")
      yield* tabA.next((e) => e.type === "message_chunk")

      // The sender and another tab are both refused while it streams.
      yield* tabA.chat("Second question")
      const busyA = yield* tabA.waitFor("error")
      expect(busyA.code).toBe("BUSY")
      expect(busyA.messageId).toBeUndefined()
      yield* tabB.chat("A question from the other tab")
      const busyB = yield* tabB.next((e) => e.type === "error")
      expect(busyB).toMatchObject({ type: "error", code: "BUSY" })
      resume.open()

      const answer = yield* tabA.untilComplete(start.messageId)
      expect(answer.end).toMatchObject({ type: "message_complete", status: "complete", fullContent: chunks.join("") })
      // Each BUSY went to its sender only; no second answer started.
      expect(tabA.events.filter((e) => e.type === "error")).toHaveLength(1)
      expect(tabB.events.filter((e) => e.type === "error")).toHaveLength(1)
      expect(tabA.events.filter((e) => e.type === "message_start")).toHaveLength(1)
      const rows = yield* storedMessages(app, project.id)
      expect(rows.map((r) => [r.role, r.content])).toEqual([
        ["user", "First question"],
        ["assistant", chunks.join("")]
      ])
      expect(fake.chatRequests()).toHaveLength(1)

      // Once it is done, the next message is answered.
      const next = yield* tabB.ask("Second question, again")
      expect(next.end).toMatchObject({ type: "message_complete", status: "complete" })
      expect(fake.chatRequests().at(-1)?.messages.at(-1)).toEqual({ role: "user", content: "Second question, again" })
    }), TEST_TIMEOUT)

  it.scopedLive("lets another project chat while one is busy", () =>
    Effect.gen(function* () {
      const { fake, app, project: slowProject } = yield* claudeProject({ title: "Slow" })
      const otherProject = yield* newProject(app, "Other")
      const slow = yield* connect(app.wsUrl, slowProject.id)
      const other = yield* connect(app.wsUrl, otherProject.id)
      // The slow answer is held after its first chunk until the quick one is complete.
      const resume = gate()
      fake.enqueueChat({ kind: "text", chunks: ["a", "b", "c", "d"], pauseAfter: 1, resume: resume.promise })
      yield* slow.chat("slow one")
      const start = yield* slow.waitFor("message_start")
      yield* slow.next((e) => e.type === "message_chunk" && e.messageId === start.messageId)
      fake.enqueueChat({ kind: "text", chunks: ["quick"] })
      const quick = yield* other.ask("quick one")
      expect(quick.end).toMatchObject({ type: "message_complete", fullContent: "quick" })
      // The two answers overlapped: the slow one had started and had not ended when the quick one was complete.
      expect(fake.fake.openStreams, "the slow answer's stream is still open").toBe(1)
      expect(slow.events.some((e) => e.type === "message_complete" || e.type === "error")).toBe(false)
      resume.open()
      const done = yield* slow.untilComplete(start.messageId)
      expect(done.end).toMatchObject({ type: "message_complete", fullContent: "abcd" })
      // Neither saw the other's events.
      expect(slow.events.some((e) => "messageId" in e && e.messageId === quick.start.messageId)).toBe(false)
      expect(other.events.some((e) => "messageId" in e && e.messageId === start.messageId)).toBe(false)
    }), TEST_TIMEOUT)
})

describe.concurrent("chat: several connections", () => {
  it.scopedLive("two tabs on one project receive identical start, chunk and complete events", () =>
    Effect.gen(function* () {
      const { fake, app, project } = yield* claudeProject({ titleReply: { kind: "text", chunks: ["Inventory Tracker"] } })
      const elsewhere = yield* newProject(app, "Elsewhere")
      const tabA = yield* connect(app.wsUrl, project.id)
      const tabB = yield* connect(app.wsUrl, project.id)
      const stranger = yield* connect(app.wsUrl, elsewhere.id)

      fake.enqueueChat({ kind: "text", chunks: INVENTORY_CHUNKS, chunkDelayMs: 10 })
      const fromA = yield* tabA.ask("Build me an inventory tracker")
      const fromB = yield* tabB.untilComplete(fromA.start.messageId)
      expect(fromB.frames).toEqual(fromA.frames)
      expect(fromB.frames).toHaveLength(INVENTORY_CHUNKS.length + 2)
      expectChunkSequence(fromB.chunks, INVENTORY_CHUNKS)

      // Both hear about the new title; a connection to another project hears nothing.
      const titleA = yield* tabA.seen("project_updated")
      const titleB = yield* tabB.seen("project_updated")
      expect(titleB).toEqual(titleA)
      yield* stranger.ping()
      expect(stranger.events.map((e) => e.type)).toEqual(["pong"])
    }), TEST_TIMEOUT)

  it.scopedLive("a tab that joins mid-answer catches up (resumed start, the text so far) and follows to the end", () =>
    Effect.gen(function* () {
      const { fake, app, project, client: first } = yield* claudeChat({ title: "Join late" })
      const chunks = ["Alpha ", "beta ", "gamma ", "delta ", "epsilon ", "zeta ", "eta ", "theta"]
      // Held after two chunks while the late tab joins, so it surely joins mid-answer.
      const resume = gate()
      fake.enqueueChat({ kind: "text", chunks, pauseAfter: 2, resume: resume.promise })
      yield* first.chat("Greek letters please")
      const start = yield* first.waitFor("message_start")
      yield* first.next((e) => e.type === "message_chunk" && e.seq >= 2)

      const late = yield* connect(app.wsUrl, project.id)
      const catchUp = yield* late.next((e) => e.type === "message_chunk" && e.messageId === start.messageId)
      expect(catchUp).toMatchObject({ seq: 2, offset: 0, content: "Alpha beta " })
      resume.open()
      const lateAnswer = yield* late.untilComplete(start.messageId)
      const fullAnswer = yield* first.untilComplete(start.messageId)
      expect(lateAnswer.start).toMatchObject({ messageId: start.messageId, userMessageId: start.userMessageId, resumed: true })
      // The catch-up chunk plus what followed rebuilds exactly the answer, offsets and seqs consistent.
      const lateText = lateAnswer.chunks.reduce((text, chunk) => {
        expect(chunk.offset).toBeLessThanOrEqual(text.length)
        return text.slice(0, chunk.offset) + chunk.content
      }, "")
      expect(lateText).toBe(chunks.join(""))
      const seqs = lateAnswer.chunks.map((c) => c.seq)
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
      expect(seqs.at(-1)).toBe(chunks.length)
      expect(lateAnswer.end).toEqual(fullAnswer.end)
    }), TEST_TIMEOUT)
})

describe.concurrent("chat: retried sends", () => {
  it.scopedLive("a retried send with the same clientMessageId is acknowledged, not stored or answered twice", () =>
    Effect.gen(function* () {
      const { fake, app, project, client } = yield* claudeChat({ title: "Retries" })
      fake.enqueueChat({ kind: "text", chunks: ["only ", "once"] })
      yield* client.chat("Do it once", { clientMessageId: "client-1" })
      const start = yield* client.waitFor("message_start")
      const first = yield* client.untilComplete(start.messageId)

      yield* client.chat("Do it once", { clientMessageId: "client-1" })
      const again = yield* client.waitFor("message_start")
      expect(again).toMatchObject({ messageId: start.messageId, userMessageId: start.userMessageId, resumed: true })
      const end = yield* client.waitFor("message_complete")
      expect(end.fullContent).toBe("only once")
      expect(end.codeBlocks).toEqual(first.end.type === "message_complete" ? first.end.codeBlocks : undefined)
      expect(yield* countMessages(app, project.id)).toBe(2)
      expect(fake.chatRequests()).toHaveLength(1)
    }), TEST_TIMEOUT)
})

// Not concurrent: the heartbeat runs on real time, so this test runs alone in its block.
describe("chat: heartbeat", () => {
  it.scopedLive("closes a connection that does not answer protocol pings; keeps one that does", () =>
    Effect.gen(function* () {
      // Real time is the point here: a pong timeout several pings long, so a busy machine
      // delaying one pong does not cut the answering client; waits are on events.
      const { app, project } = yield* claudeProject({ title: "Heartbeat", env: { WS_PING_INTERVAL: "1", WS_PONG_TIMEOUT: "4" } })
      const silent = yield* connect(app.wsUrl, project.id, { autoPong: false })
      const alive = yield* connect(app.wsUrl, project.id)

      const closed = yield* silent.awaitClose(30_000)
      // Cut without a close handshake (the socket is terminated): 1006 on the client.
      expect(closed.code).toBe(1006)
      // One ping outstanding at a time (a pong counts only as the answer to it): a client that
      // never answers gets exactly one, then is cut once WS_PONG_TIMEOUT has passed.
      expect(silent.pings).toBe(1)

      // The answering client, connected as long as the silent one, outlived it by two more pings and still works.
      yield* alive.awaitPings(silent.pings + 2, 30_000)
      expect(alive.isOpen).toBe(true)
      yield* alive.ping()
    }), TEST_TIMEOUT)
})

describe.concurrent("chat: titles (FR-015)", () => {
  it.scopedLive("names a default-titled project with the title model and tells its sockets", () =>
    Effect.gen(function* () {
      const { fake, app, project } = yield* claudeProject({
        titleReply: { kind: "text", chunks: ["\"Inventory Tracker.\""] },
        env: { CLAUDE_TITLE_MODEL: "claude-test-haiku" }
      })
      expect(project.title).toBe("New Project")
      const client = yield* connect(app.wsUrl, project.id)
      fake.enqueueChat({ kind: "text", chunks: ["Sure."] })
      yield* client.ask("Build me an inventory tracker")
      const updated = yield* client.seen("project_updated")
      // Quotes and a trailing period from the model are not part of the title.
      expect(updated).toMatchObject({ type: "project_updated", projectId: project.id, title: "Inventory Tracker" })
      expect((yield* getProject(app, project.id)).title).toBe("Inventory Tracker")
      const [titleRequest] = fake.titleRequests()
      expect(titleRequest?.model).toBe("claude-test-haiku")
      expect(titleRequest?.stream).not.toBe(true)
      expect(fake.titleRequests()).toHaveLength(1)
    }), TEST_TIMEOUT)

  it.scopedLive("falls back to the first words of the message when the title call fails", () =>
    Effect.gen(function* () {
      const { app, project, client } = yield* claudeChat({ titleReply: { kind: "httpError", errorType: "api_error", status: 500 } })
      const message = "Please build me a small inventory tracker for my bakery with prices"
      const answer = yield* client.ask(message)
      expect(answer.end).toMatchObject({ type: "message_complete", status: "complete" })
      const updated = yield* client.seen("project_updated")
      expect(updated.title).not.toBe("New Project")
      expect(updated.title.length).toBeGreaterThan(0)
      expect(message.startsWith(updated.title)).toBe(true)
      expect(message.slice(updated.title.length)).toMatch(/^(\s|$)/) // whole words
      expect((yield* getProject(app, project.id)).title).toBe(updated.title)
    }), TEST_TIMEOUT)

  it.scopedLive("never overwrites a title the user set, at creation or while the title is being generated", () =>
    Effect.gen(function* () {
      // Set at creation.
      const { fake, app, project: named, client } = yield* claudeChat({
        title: "My Bakery",
        titleReply: { kind: "text", chunks: ["Generated Title"] }
      })
      yield* client.ask("Build me an inventory tracker")
      yield* client.ask("Add a search feature")
      expect((yield* getProject(app, named.id)).title).toBe("My Bakery")
      expect(client.events.filter((e) => e.type === "project_updated")).toEqual([])
      expect(fake.titleRequests(), "no title is generated for a named project").toEqual([])

      // Renamed by the user while the title generation is held by the fake.
      const titleHeld = gate()
      fake.setTitle({ kind: "text", chunks: ["Generated ", "Title"], pauseAfter: 0, resume: titleHeld.promise })
      const fresh = yield* newProject(app)
      const other = yield* connect(app.wsUrl, fresh.id)
      const answer = yield* other.ask("Build me a recipe book")
      expect(answer.end).toMatchObject({ type: "message_complete" })
      yield* eventually("the title call was made", Effect.sync(() => fake.titleRequests().length), (n) => n >= 1)
      const renamed = yield* sendJson("PATCH", `${app.url}/api/projects/${fresh.id}`, { title: "Recipes" })
      expect(renamed.status).toBe(200)
      // Then the title arrives; the service's attempt to apply it is seen in the database itself.
      const titleWrites = yield* countTitleWrites(app)
      titleHeld.open()
      yield* eventually("the service tried to store the generated title", titleWrites, (n) => n >= 1)
      expect((yield* getProject(app, fresh.id)).title).toBe("Recipes")
      expect(other.events.filter((e) => e.type === "project_updated")).toEqual([])
    }), TEST_TIMEOUT)

  it.scopedLive("titles the project from its first message, even when a second message comes before that title is done", () =>
    Effect.gen(function* () {
      // The first message's title is held until the second message is answered; a title for the second would come back at once.
      const firstTitleHeld = gate()
      const { fake, app, project, client } = yield* claudeChat({
        titleReply: {
          kind: "function",
          reply: (body) =>
            JSON.stringify(body.messages).includes("inventory tracker")
              ? { kind: "text", chunks: ["Inventory ", "Tracker"], pauseAfter: 0, resume: firstTitleHeld.promise }
              : { kind: "text", chunks: ["Search Feature"] }
        }
      })
      yield* client.ask("Build me an inventory tracker")
      yield* client.ask("Add a search feature")
      yield* eventually("the first title call was made", Effect.sync(() => fake.titleRequests().length), (n) => n >= 1)
      firstTitleHeld.open()
      const updated = yield* client.seen("project_updated")
      expect(updated.title).toBe("Inventory Tracker")
      expect((yield* getProject(app, project.id)).title).toBe("Inventory Tracker")
      expect(client.events.filter((e) => e.type === "project_updated")).toHaveLength(1)
      // One title request, for the first message.
      expect(fake.titleRequests().map((r) => r.messages)).toEqual([[{ role: "user", content: "Build me an inventory tracker" }]])
    }), TEST_TIMEOUT)

  it.scopedLive("bumps the project's updatedAt with every stored message", () =>
    Effect.gen(function* () {
      const { fake, app, project, client } = yield* claudeChat({ title: "Activity" })
      let previous = project.updatedAt

      for (const text of ["first", "second"]) {
        // Timestamps have millisecond precision on the wire: let the clock move on before each message.
        yield* Effect.sleep("20 millis")
        // Held before its first chunk until the streaming state has been read.
        const resume = gate()
        fake.enqueueChat({ kind: "text", chunks: ["an ", "answer ", "to ", text], pauseAfter: 0, resume: resume.promise })
        yield* client.chat(text)
        const start = yield* client.waitFor("message_start")
        // The user message is stored (the answer is still streaming): updatedAt moved.
        const during = yield* getProject(app, project.id)
        expect(later(during.updatedAt, previous)).toBe(true)
        expect(during.messages.find((m) => m.id === start.userMessageId)).toMatchObject({ content: text })
        expect(during.messages.find((m) => m.id === start.messageId)).toMatchObject({ status: "streaming" })
        yield* Effect.sleep("20 millis")
        resume.open()
        yield* client.untilComplete(start.messageId)
        // The answer is stored: updatedAt moved again.
        const after = yield* getProject(app, project.id)
        expect(later(after.updatedAt, during.updatedAt)).toBe(true)
        previous = after.updatedAt
      }
      const listed = yield* request(`${app.url}/api/projects`)
      expect(listed.json).toMatchObject({ projects: [{ id: project.id, messageCount: 4, updatedAt: previous }] })
    }), TEST_TIMEOUT)
})

describe("the title request waits for the answer to get going", () => {
  const steppedApp = Effect.gen(function* () {
    const stepper = yield* SteppedAnthropicScoped
    const app = yield* startTestApp({ CLAUDE_API_KEY: TEST_API_KEY, CLAUDE_BASE_URL: stepper.url, SHUTDOWN_GRACE_SECONDS: "1" })
    const project = yield* newProject(app)
    const client = yield* connect(app.wsUrl, project.id)
    const titleRequests = () => stepper.requests.filter((body) => body["stream"] !== true)
    return { stepper, project, client, titleRequests }
  })

  it.scopedLive("is sent after the first chunk, not beside the start of the answer", () =>
    Effect.gen(function* () {
      const { stepper, project, client, titleRequests } = yield* steppedApp
      yield* client.chat("Build me an inventory tracker")
      const stream = yield* Effect.promise(() => stepper.nextStream())
      // The answer's request is out and nothing has streamed: no title request may follow it yet.
      yield* Effect.sleep("300 millis")
      expect(titleRequests()).toHaveLength(0)
      yield* Effect.promise(() => stream.emit("Here is"))
      const updated = yield* client.seen("project_updated")
      expect(updated).toMatchObject({ projectId: project.id })
      expect(titleRequests()).toHaveLength(1)
      yield* Effect.promise(() => stream.finish())
    }))

  it.scopedLive("is sent when the answer ends without a chunk", () =>
    Effect.gen(function* () {
      const { stepper, project, client, titleRequests } = yield* steppedApp
      yield* client.chat("Build me an inventory tracker")
      const stream = yield* Effect.promise(() => stepper.nextStream())
      yield* Effect.promise(() => stream.finish())
      const updated = yield* client.seen("project_updated")
      expect(updated).toMatchObject({ projectId: project.id })
      expect(titleRequests()).toHaveLength(1)
    }))
})
