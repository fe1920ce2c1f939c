/**
 * Issue 4 — durable, resumable generations, in process: the real service (AppLive) on a
 * fresh database, the real Anthropic SDK against a fake Messages API.
 *
 * Disconnects, rejoins at every chunk position, idempotent sends, cancel, Claude failures
 * before and during the stream, checkpoints and a database outage. Nothing here asserts
 * wall-clock durations: waits are liveness bounds only.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { randomUUID } from "node:crypto"
import {
  claudeProject,
  countMessages,
  eventually,
  fakeIdle,
  getProject,
  newProject,
  storedMessages,
  TEST_API_KEY
} from "./support/ChatApp.js"
import { type ChatClient, connect, type MessageComplete } from "./support/ChatClient.js"
import { gate } from "./support/FakeAnthropic.js"
import type { FakeRouter } from "./support/FakeRouter.js"
import { get } from "./support/Http.js"
import {
  answerEvents,
  Assembler,
  chunksOf,
  directSql,
  expectExactView,
  messageRow,
  expectNoSecret,
  numberedChunks,
  seenChunk,
  startAnswer
} from "./support/Reliability.js"
import { report } from "./support/Report.js"
import { SteppedAnthropicScoped } from "./support/SteppedAnthropic.js"
import { TcpProxyScoped, targetOf } from "./support/TcpProxy.js"
import type { TestApp } from "./support/TestApp.js"
import { startTestApp } from "./support/TestApp.js"
import { freshDatabase } from "./support/TestDatabase.js"

/** Every client opened in this file; none may ever have received the API key. */
const clients: Array<ChatClient> = []
const open = (app: Pick<TestApp, "wsUrl">, projectId: string) =>
  Effect.tap(connect(app.wsUrl, projectId), (client) => Effect.sync(() => clients.push(client)))

afterAll(() => {
  for (const client of clients) for (const frame of client.frames) expect(frame).not.toContain(TEST_API_KEY)
})

const assistantRow = (app: TestApp, projectId: string, messageId: string) =>
  Effect.map(storedMessages(app, projectId), (rows) => rows.find((row) => row.id === messageId))

/** Waits until the stored answer has left `streaming` and returns its row. */
const finalRow = (app: TestApp, projectId: string, messageId: string, timeoutMs = 20_000) =>
  eventually(
    `answer ${messageId} is stored with a final status`,
    assistantRow(app, projectId, messageId),
    (row) => row !== undefined && row.status !== "streaming",
    timeoutMs
  ).pipe(Effect.map((row) => row!))

const streamedBodies = (fake: FakeRouter) => fake.chatRequests()

const rolesOf = (body: { readonly messages: ReadonlyArray<{ readonly role: string }> } | undefined) =>
  body?.messages.map((m) => m.role)

/** The service answered by a stepped fake (each chunk is sent when the test says so), and a new project. */
const steppedProject = (title: string, env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const stepper = yield* SteppedAnthropicScoped
    const app = yield* startTestApp({ CLAUDE_API_KEY: TEST_API_KEY, CLAUDE_BASE_URL: stepper.url, SHUTDOWN_GRACE_SECONDS: "1", ...env })
    const project = yield* newProject(app, title)
    return { stepper, app, project }
  })

describe("disconnect", () => {
  it.scopedLive("a client that drops mid-stream does not stop the answer: it completes and is stored in full", () =>
    Effect.gen(function* () {
      const chunks = numberedChunks(20)
      // Held after 3 chunks until the client is gone: it surely leaves mid-answer.
      const resume = gate()
      const { fake, app, project } = yield* claudeProject({
        title: "Disconnect",
        replies: [{ kind: "text", chunks, pauseAfter: 3, resume: resume.promise }]
      })
      const client = yield* open(app, project.id)
      const start = yield* startAnswer(client, "Build me a tracker")
      yield* seenChunk(client, start.messageId, 3)
      client.ws.terminate() // abrupt: no close frame
      yield* client.awaitClose()
      resume.open()

      const row = yield* finalRow(app, project.id, start.messageId)
      expect(row).toMatchObject({ role: "assistant", status: "complete", content: chunks.join(""), stopReason: "end_turn" })
      expect(fake.fake.abortedStreams, "the upstream request was not aborted").toBe(0)
      expect(streamedBodies(fake)).toHaveLength(1)

      const viaRest = yield* getProject(app, project.id)
      expect(viaRest.messages.map((m) => [m.role, m.status, m.content])).toStrictEqual([
        ["user", "complete", "Build me a tracker"],
        ["assistant", "complete", chunks.join("")]
      ])
    }), 60_000)

  it.scopedLive("every connection closing cleanly (close frame) does not stop the answer either", () =>
    Effect.gen(function* () {
      const chunks = numberedChunks(15)
      const resume = gate()
      const { fake, app, project } = yield* claudeProject({
        title: "Disconnect 2",
        replies: [{ kind: "text", chunks, pauseAfter: 2, resume: resume.promise }]
      })
      const a = yield* open(app, project.id)
      const b = yield* open(app, project.id)
      const start = yield* startAnswer(a, "Build me a tracker")
      yield* seenChunk(b, start.messageId, 2)
      yield* a.close()
      yield* b.close()
      resume.open()
      const row = yield* finalRow(app, project.id, start.messageId)
      expect(row).toMatchObject({ status: "complete", content: chunks.join("") })
      expect(fake.fake.abortedStreams).toBe(0)
    }), 60_000)
})

describe("rejoin", () => {
  it.scopedLive(
    "joining after every chunk position k = 0..50 of a 50-chunk answer: resumed start, one catch-up chunk, then live chunks; each assembles exactly the stored text",
    () =>
      Effect.gen(function* () {
        const { stepper, app, project } = yield* steppedProject("Rejoin")
        const chunks = numberedChunks(50)
        const prefix = (k: number) => chunks.slice(0, k).join("")

        const watcher = yield* open(app, project.id)
        const start = yield* startAnswer(watcher, "Write me fifty chunks")
        const stream = yield* Effect.promise(() => stepper.nextStream())
        const id = start.messageId

        // k = 0: the answer has started but nothing is generated yet: a resumed start and no catch-up chunk.
        const rejoiners: Array<{ readonly k: number; readonly client: ChatClient }> = []
        const first = yield* open(app, project.id)
        const firstStart = yield* first.waitFor("message_start")
        expect(firstStart).toMatchObject({ messageId: id, userMessageId: start.userMessageId, resumed: true })
        rejoiners.push({ k: 0, client: first })

        // A "session" that drops after every chunk and reconnects, merging by offset.
        const session = new Assembler()
        let sessionClient: ChatClient | undefined
        let sessionConnections = 0

        for (let k = 1; k <= chunks.length; k++) {
          yield* Effect.promise(() => stream.emit(chunks[k - 1]!))
          yield* seenChunk(watcher, id, k)

          const client = yield* open(app, project.id)
          const resumed = yield* client.waitFor("message_start")
          expect(resumed, `rejoin after chunk ${k}`).toMatchObject({ messageId: id, userMessageId: start.userMessageId, resumed: true })
          const catchUp = yield* client.waitFor("message_chunk")
          expect(
            { messageId: catchUp.messageId, seq: catchUp.seq, offset: catchUp.offset, content: catchUp.content },
            `catch-up after chunk ${k}`
          ).toStrictEqual({ messageId: id, seq: k, offset: 0, content: prefix(k) })
          rejoiners.push({ k, client })

          // The session's previous connection has now seen chunk k live: drop it, reconnect.
          if (sessionClient !== undefined) {
            yield* seenChunk(sessionClient, id, k)
            sessionClient.ws.terminate()
            session.applyAll(chunksOf(sessionClient, id))
          }
          sessionClient = yield* open(app, project.id)
          sessionConnections++
          yield* seenChunk(sessionClient, id, k)
        }
        yield* Effect.promise(() => stream.finish())

        const watched = yield* watcher.untilComplete(id)
        expect(watched.end).toMatchObject({ type: "message_complete", status: "complete", stopReason: "end_turn" })
        const row = yield* finalRow(app, project.id, id)
        expect(row.status).toBe("complete")
        expect(row.content).toBe(chunks.join(""))
        expect(expectExactView(answerEvents(watcher, id), { resumed: false, messageId: id }).text).toBe(row.content)

        for (const { k, client } of rejoiners) {
          yield* client.untilComplete(id)
          const view = expectExactView(answerEvents(client, id), { resumed: true, messageId: id, catchUp: k > 0 })
          expect(view.catchUpSeq, `catch-up seq of the client that joined after chunk ${k}`).toBe(k === 0 ? undefined : k)
          expect(view.text, `text assembled by the client that joined after chunk ${k}`).toBe(row.content)
        }

        // The session's last connection sees the end; everything merged by offset is the stored text.
        const last = yield* sessionClient!.untilComplete(id)
        session.applyAll(chunksOf(sessionClient!, id))
        expect(session.problems).toStrictEqual([])
        expect(session.text).toBe(row.content)
        expect(last.end).toMatchObject({ type: "message_complete", fullContent: row.content })
        expect(sessionConnections).toBe(50)

        // After the end, a new connection is not told about a finished answer.
        const late = yield* open(app, project.id)
        yield* late.ping()
        expect(late.events.filter((e) => e.type !== "pong")).toStrictEqual([])
        expect(stepper.requests.filter((r) => r["stream"] === true)).toHaveLength(1)
      }),
    60_000
  )
})

describe("idempotent send (clientMessageId)", () => {
  it.scopedLive(
    "the same clientMessageId sent again — same and new connection, while streaming and after completion — makes one user message, one answer, one Claude request, and is acknowledged",
    () =>
      Effect.gen(function* () {
        const { stepper, app, project } = yield* steppedProject("Idempotent")
        const cmid = `retry-${randomUUID()}`
        const chunks = numberedChunks(6)

        const a = yield* open(app, project.id)
        const start = yield* startAnswer(a, "Build a todo app", { clientMessageId: cmid })
        const stream = yield* Effect.promise(() => stepper.nextStream())
        yield* Effect.promise(() => stream.emit(chunks[0]!))
        yield* Effect.promise(() => stream.emit(chunks[1]!))
        yield* seenChunk(a, start.messageId, 2)

        // While streaming, on the same connection: acknowledged with a resumed start and a catch-up chunk.
        yield* a.chat("Build a todo app", { clientMessageId: cmid })
        const ackSame = yield* a.next((e) => e.type === "message_start" && e.resumed === true)
        expect(ackSame).toMatchObject({ messageId: start.messageId, userMessageId: start.userMessageId, resumed: true })
        const catchUpSame = yield* a.next((e) => e.type === "message_chunk" && e.offset === 0 && e.seq === 2)
        expect(catchUpSame).toMatchObject({ content: chunks[0]! + chunks[1]! })

        // While streaming, on a new connection (a reconnect): joined at once, and the retry is acknowledged again.
        const b = yield* open(app, project.id)
        yield* b.next((e) => e.type === "message_start" && e.resumed === true)
        yield* b.chat("Build a todo app", { clientMessageId: cmid })
        const ackNew = yield* b.next((e) => e.type === "message_start" && e.resumed === true)
        expect(ackNew).toMatchObject({ messageId: start.messageId, userMessageId: start.userMessageId })
        expect(b.events.filter((e) => e.type === "error")).toStrictEqual([])

        for (const chunk of chunks.slice(2)) yield* Effect.promise(() => stream.emit(chunk))
        yield* Effect.promise(() => stream.finish())
        const done = yield* a.untilComplete(start.messageId)
        expect(done.end).toMatchObject({ type: "message_complete", status: "complete", fullContent: chunks.join("") })
        yield* b.untilComplete(start.messageId)

        // Merging a's chunks by offset (live + catch-up duplicates) still gives the text once.
        const merged = new Assembler().applyAll(chunksOf(a, start.messageId))
        expect(merged.problems).toStrictEqual([])
        expect(merged.text).toBe(chunks.join(""))

        // After completion, same connection: acknowledged with the stored answer.
        yield* a.chat("Build a todo app", { clientMessageId: cmid })
        const ackAfter = yield* a.next((e) => e.type === "message_start" && e.resumed === true)
        expect(ackAfter).toMatchObject({ messageId: start.messageId, userMessageId: start.userMessageId })
        const completeAfter = yield* a.next((e): e is MessageComplete => e.type === "message_complete")
        expect(completeAfter).toMatchObject({ messageId: start.messageId, status: "complete", fullContent: chunks.join(""), stopReason: "end_turn" })

        // After completion, new connection (even with different text: the id decides).
        const c = yield* open(app, project.id)
        yield* c.chat("Build a todo app (edited)", { clientMessageId: cmid })
        const ackLate = yield* c.waitFor("message_start")
        expect(ackLate).toMatchObject({ messageId: start.messageId, userMessageId: start.userMessageId, resumed: true })
        const completeLate = yield* c.waitFor("message_complete")
        expect(completeLate).toMatchObject({ messageId: start.messageId, status: "complete", fullContent: chunks.join("") })

        const rows = yield* storedMessages(app, project.id)
        expect(rows.map((r) => [r.role, r.status, r.content])).toStrictEqual([
          ["user", "complete", "Build a todo app"],
          ["assistant", "complete", chunks.join("")]
        ])
        expect(stepper.requests.filter((r) => r["stream"] === true), "one Claude request").toHaveLength(1)
        for (const client of [a, b, c]) expect(client.events.filter((e) => e.type === "error")).toStrictEqual([])
      }),
    60_000
  )


  it.scopedLive("a retry acknowledged on one connection: the same retry on another, while the first still holds the project, is acknowledged too", () =>
    Effect.gen(function* () {
      const database = yield* freshDatabase
      const proxy = yield* TcpProxyScoped(targetOf(database))
      const { stepper, app, project } = yield* steppedProject("Two retries", { DATABASE_URL: proxy.urlFor(database) })
      const cmid = `retry-${randomUUID()}`
      const a = yield* open(app, project.id)
      const c = yield* open(app, project.id)
      const start = yield* startAnswer(a, "Build a todo app", { clientMessageId: cmid })
      const stream = yield* Effect.promise(() => stepper.nextStream())
      yield* Effect.promise(() => stream.emit("Done."))
      yield* Effect.promise(() => stream.finish())
      yield* a.untilComplete(start.messageId)

      // Every reply of PostgreSQL is slow now: after acknowledging a's retry, the service still
      // holds the project until its claim is released, a round trip later. c's retry comes then.
      proxy.setDelay(1000)
      yield* a.chat("Build a todo app", { clientMessageId: cmid })
      yield* a.next((e): e is MessageComplete => e.type === "message_complete" && e.messageId === start.messageId && a.events.filter((x) => x.type === "message_complete").length === 2)
      yield* c.chat("Build a todo app", { clientMessageId: cmid })
      const ackC = yield* c.next((e) => e.type === "message_start" && e.resumed === true, 30_000)
      expect(ackC).toMatchObject({ messageId: start.messageId, userMessageId: start.userMessageId })
      const completeC = yield* c.next((e): e is MessageComplete => e.type === "message_complete" && e.messageId === start.messageId, 30_000)
      expect(completeC).toMatchObject({ status: "complete", fullContent: "Done." })
      proxy.setDelay(0)
      expect(stepper.requests.filter((r) => r["stream"] === true), "one Claude request").toHaveLength(1)
    }), 60_000)
  it.scopedLive("a retry of an answered message is acknowledged (not BUSY) while another answer of the project streams", () =>
    Effect.gen(function* () {
      const { stepper, app, project } = yield* steppedProject("Idempotent busy")
      const a = yield* open(app, project.id)
      const first = yield* startAnswer(a, "first", { clientMessageId: "m-1" })
      const s1 = yield* Effect.promise(() => stepper.nextStream())
      yield* Effect.promise(() => s1.emit("first answer"))
      yield* Effect.promise(() => s1.finish())
      yield* a.untilComplete(first.messageId)

      const second = yield* startAnswer(a, "second", { clientMessageId: "m-2" })
      const s2 = yield* Effect.promise(() => stepper.nextStream())
      yield* Effect.promise(() => s2.emit("second "))
      yield* seenChunk(a, second.messageId, 1)

      // The client missed the acknowledgement of m-1 and retries it while m-2 streams.
      const b = yield* open(app, project.id)
      yield* b.next((e) => e.type === "message_start" && e.resumed === true && e.messageId === second.messageId)
      yield* b.chat("first", { clientMessageId: "m-1" })
      const reply = yield* b.next(
        (e) => (e.type === "message_start" && e.messageId === first.messageId) || e.type === "error",
        10_000,
        "the acknowledgement of m-1"
      )
      yield* Effect.promise(() => s2.finish())
      yield* a.untilComplete(second.messageId)
      expect(reply, "a retried, already answered message is acknowledged, not refused").toMatchObject({
        type: "message_start",
        messageId: first.messageId,
        userMessageId: first.userMessageId,
        resumed: true
      })
      expect(yield* countMessages(app, project.id)).toBe(4)
    }), 60_000)
})

describe("cancel", () => {
  it.scopedLive(
    "cancel from a second connection aborts the upstream request, stores the partial answer as cancelled and tells every connection; repeats are harmless; chat goes on",
    () =>
      Effect.gen(function* () {
        const { fake, app, project } = yield* claudeProject({ title: "Cancel", replies: [{ kind: "stall", chunks: ["one ", "two ", "three "] }] })
        const a = yield* open(app, project.id)
        const b = yield* open(app, project.id)
        const start = yield* startAnswer(a, "Write something long")
        yield* seenChunk(a, start.messageId, 3)
        yield* seenChunk(b, start.messageId, 3)
        expect(fake.fake.openStreams).toBe(1)

        yield* b.send({ type: "cancel" })
        const endA = yield* a.untilComplete(start.messageId)
        const endB = yield* b.untilComplete(start.messageId)
        for (const end of [endA.end, endB.end]) {
          expect(end).toMatchObject({
            type: "message_complete",
            messageId: start.messageId,
            status: "cancelled",
            fullContent: "one two three ",
            stopReason: null
          })
        }
        yield* fakeIdle(fake)
        expect(fake.fake.abortedStreams, "the upstream HTTP request was closed").toBe(1)
        const row = yield* finalRow(app, project.id, start.messageId)
        expect(row).toMatchObject({ status: "cancelled", content: "one two three " })

        // Cancelling again, with the finished id, with nothing running, with another id: no reply, no error.
        const before = [a.events.length, b.events.length]
        yield* b.send({ type: "cancel" })
        yield* b.send({ type: "cancel", messageId: start.messageId })
        yield* a.send({ type: "cancel", messageId: randomUUID() })
        yield* a.send({ type: "cancel" })
        yield* a.ping()
        yield* b.ping()
        expect(a.events.slice(before[0]).map((e) => e.type)).toStrictEqual(["pong"])
        expect(b.events.slice(before[1]).map((e) => e.type)).toStrictEqual(["pong"])

        // A new message works; a cancel naming another answer does not stop it.
        const chunks = numberedChunks(8)
        const resume = gate()
        fake.enqueueChat({ kind: "text", chunks, pauseAfter: 1, resume: resume.promise })
        const next = yield* startAnswer(a, "Now something short")
        yield* seenChunk(a, next.messageId, 1)
        yield* b.send({ type: "cancel", messageId: start.messageId })
        yield* b.send({ type: "cancel", messageId: randomUUID() })
        // Frames of one connection are handled in order: once the pong is back, both cancels were.
        yield* b.ping()
        resume.open()
        const nextEnd = yield* a.untilComplete(next.messageId)
        expect(nextEnd.end).toMatchObject({ type: "message_complete", status: "complete", fullContent: chunks.join("") })
        // The cancelled partial answer is context for the next request, which the fake accepted.
        const second = streamedBodies(fake)[1]
        expect(rolesOf(second)).toStrictEqual(["user", "assistant", "user"])
        expect(second?.messages[1]?.content).toBe("one two three ")
        expect(yield* countMessages(app, project.id)).toBe(4)
      }),
    60_000
  )

  it.scopedLive("cancel by messageId from the sender, then a cancel with a malformed id is a validation error on a usable connection", () =>
    Effect.gen(function* () {
      // Held after 2 chunks (never released): the cancel surely comes mid-answer.
      const chunks = numberedChunks(200)
      const { fake, app, project } = yield* claudeProject({
        title: "Cancel 2",
        replies: [{ kind: "text", chunks, pauseAfter: 2, resume: gate().promise }]
      })
      const a = yield* open(app, project.id)
      const start = yield* startAnswer(a, "Long one")
      yield* seenChunk(a, start.messageId, 2)
      yield* a.send({ type: "cancel", messageId: start.messageId })
      const end = yield* a.untilComplete(start.messageId)
      expect(end.end).toMatchObject({ type: "message_complete", status: "cancelled", stopReason: null })
      const seen = chunksOf(a, start.messageId).map((c) => c.content).join("")
      expect(seen).toBe(chunks.slice(0, 2).join(""))
      expect((end.end as MessageComplete).fullContent).toBe(seen)
      const row = yield* finalRow(app, project.id, start.messageId)
      expect(row).toMatchObject({ status: "cancelled", content: seen })
      yield* fakeIdle(fake)
      expect(fake.fake.abortedStreams).toBe(1)

      yield* a.send({ type: "cancel", messageId: "not-a-uuid" })
      const error = yield* a.waitFor("error")
      expect(error.code).toBe("VALIDATION_ERROR")
      yield* a.ping()

      // The project is free again: the next message is answered, with the cancelled text as context.
      fake.enqueueChat({ kind: "text", chunks: ["ok"] })
      const next = yield* a.ask("Something short")
      expect(next.end).toMatchObject({ type: "message_complete", status: "complete", fullContent: "ok" })
      expect(streamedBodies(fake)[1]?.messages[1]).toStrictEqual({ role: "assistant", content: seen })
    }), 60_000)

  it.scopedLive("cancel while the SDK waits to retry a 529: the answer ends cancelled and no request is sent after the cancel", () =>
    Effect.gen(function* () {
      const { fake, app, project } = yield* claudeProject({
        title: "Cancel retry",
        env: { CLAUDE_MAX_RETRIES: "2" },
        // 5 s before the retry: the cancel surely comes first, even on a busy machine.
        replies: [{ kind: "httpError", errorType: "overloaded_error", retryAfterSeconds: 5 }, { kind: "text", chunks: ["late"] }]
      })
      const a = yield* open(app, project.id)
      const start = yield* startAnswer(a, "hello")
      yield* eventually("the first attempt reached the fake", Effect.sync(() => streamedBodies(fake).length), (n) => n >= 1)
      yield* a.send({ type: "cancel" })
      const end = yield* a.untilComplete(start.messageId)
      expect(end.end).toMatchObject({ type: "message_complete", status: "cancelled", fullContent: "" })
      expect(streamedBodies(fake), "the retry had not come yet when the answer ended").toHaveLength(1)
      // Absence can only be seen by waiting: until well past the moment the retry was due.
      const retryDue = (fake.requests[0]?.receivedAt ?? 0) + 5_000
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, Math.max(0, retryDue + 1_000 - (performance.timeOrigin + performance.now())))))
      expect(streamedBodies(fake), "no retry after the cancel").toHaveLength(1)
      const row = yield* finalRow(app, project.id, start.messageId)
      expect(row.status).toBe("cancelled")
    }), 60_000)
})

describe("Claude failures", () => {
  it.scopedLive("529 three times: AI_OVERLOADED after the SDK's retries; the answer is stored as an empty error; next message works", () =>
    Effect.gen(function* () {
      const overloaded = { kind: "httpError", errorType: "overloaded_error", retryAfterSeconds: 0 } as const
      const { fake, app, project } = yield* claudeProject({
        title: "Overloaded",
        env: { CLAUDE_MAX_RETRIES: "2" },
        replies: [overloaded, overloaded, overloaded]
      })
      const a = yield* open(app, project.id)
      const start = yield* startAnswer(a, "hello")
      const answer = yield* a.untilComplete(start.messageId, 20_000)
      expect(answer.end).toMatchObject({ type: "error", code: "AI_OVERLOADED", messageId: start.messageId })
      expect(answer.chunks).toStrictEqual([])
      expect(streamedBodies(fake)).toHaveLength(3)
      const row = yield* finalRow(app, project.id, start.messageId)
      // Observed and accepted: the answer row stays, empty, with status error (never sent as context).
      expect(row).toMatchObject({ role: "assistant", status: "error", content: "", errorCode: "AI_OVERLOADED" })

      const next = yield* a.ask("hello again", 20_000)
      expect(next.end).toMatchObject({ type: "message_complete", status: "complete" })
      const body = streamedBodies(fake)[3]
      // The empty answer is left out; the two user turns are merged into one.
      expect(rolesOf(body)).toStrictEqual(["user"])
      expect(body?.messages[0]?.content).toBe("hello\n\nhello again")
    }), 60_000)

  it.scopedLive("an SDK error whose text carries the API key: the client gets AI_AUTH_ERROR and never the key", () =>
    Effect.gen(function* () {
      const leaky = `invalid x-api-key: ${TEST_API_KEY}`
      const { app, project } = yield* claudeProject({
        title: "Secrets",
        replies: [
          { kind: "httpError", errorType: "authentication_error", message: leaky },
          { kind: "midStreamError", chunks: ["x"], errorType: "api_error", message: leaky }
        ]
      })
      const a = yield* open(app, project.id)
      const first = yield* startAnswer(a, "hello")
      const one = yield* a.untilComplete(first.messageId)
      expect(one.end).toMatchObject({ type: "error", code: "AI_AUTH_ERROR" })
      const second = yield* startAnswer(a, "again")
      const two = yield* a.untilComplete(second.messageId)
      expect(two.end).toMatchObject({ type: "error", code: "AI_ERROR" })
      const frames = yield* expectNoSecret(TEST_API_KEY, [a])
      expect(frames).toBeGreaterThan(0)
      // Nor is it stored anywhere a client could read it.
      const project2 = yield* get(`${app.url}/api/projects/${project.id}`)
      expect(project2.text).not.toContain(TEST_API_KEY)
    }), 60_000)
})

describe("checkpoints", () => {
  it.scopedLive(
    "while an answer streams its row is `streaming` with a growing prefix of the final text; checkpoints follow new text, never one write per chunk",
    () =>
      Effect.gen(function* () {
        // The answer comes in 4 bursts of 30 chunks, each released once the previous burst is
        // checkpointed: how many chunks arrive per interval is decided here, not by the machine's speed.
        const chunks = numberedChunks(120)
        const bursts = [0, 1, 2, 3].map((i) => chunks.slice(i * 30, (i + 1) * 30))
        const { stepper, app, project } = yield* steppedProject("Checkpoints", { CHECKPOINT_INTERVAL_MS: "200" })
        // Counts every write to a message row, in the database itself.
        yield* app.sql.unsafe(`
          CREATE TABLE test_message_writes (n BIGSERIAL, message_id UUID, status TEXT, length INT);
          CREATE FUNCTION test_log_message_write() RETURNS trigger AS $$
          BEGIN
            INSERT INTO test_message_writes (message_id, status, length) VALUES (NEW.id, NEW.status, length(NEW.content));
            RETURN NULL;
          END; $$ LANGUAGE plpgsql;
          CREATE TRIGGER test_log_message_write AFTER UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION test_log_message_write();
        `).pipe(Effect.orDie)
        const updatesBefore = yield* nTupUpd(app)

        const a = yield* open(app, project.id)
        const start = yield* startAnswer(a, "A hundred and twenty chunks, in bursts")
        const stream = yield* Effect.promise(() => stepper.nextStream())
        const final = chunks.join("")
        const snapshots: Array<{ readonly status: string; readonly content: string }> = []
        let sent = 0
        for (const burst of bursts) {
          for (const chunk of burst) yield* Effect.promise(() => stream.emit(chunk))
          sent += burst.length
          yield* seenChunk(a, start.messageId, sent)
          // The checkpoint of this burst: the stored prefix reaches everything sent so far.
          const row = yield* eventually(
            `a checkpoint with the first ${sent} chunks`,
            assistantRow(app, project.id, start.messageId),
            (row) => row !== undefined && row.content.length === chunks.slice(0, sent).join("").length
          )
          snapshots.push({ status: row!.status, content: row!.content })
        }
        yield* Effect.promise(() => stream.finish())
        yield* a.untilComplete(start.messageId, 20_000)
        const finalRowSeen = yield* finalRow(app, project.id, start.messageId)
        snapshots.push({ status: finalRowSeen.status, content: finalRowSeen.content })

        const streaming = snapshots.filter((s) => s.status === "streaming")
        expect(streaming).toHaveLength(4)
        for (const s of streaming) expect(final.startsWith(s.content), "a checkpoint is a prefix of the final text").toBe(true)
        for (let i = 1; i < streaming.length; i++) {
          expect(streaming[i]!.content.length, "checkpoints only grow").toBeGreaterThan(streaming[i - 1]!.content.length)
        }
        expect(snapshots.at(-1)).toStrictEqual({ status: "complete", content: final })

        const writes = yield* app.sql<{ status: string; length: number }>`
          SELECT status, length FROM test_message_writes WHERE message_id = ${start.messageId} ORDER BY n`.pipe(Effect.orDie)
        const checkpoints = writes.filter((w) => w.status === "streaming")
        expect(writes.at(-1), "the last write is the final one").toMatchObject({ status: "complete", length: final.length })
        expect(writes.filter((w) => w.status !== "streaming")).toHaveLength(1)
        expect(checkpoints.length).toBeGreaterThanOrEqual(4)
        // A checkpoint needs new text, and new text came in 4 bursts: a few writes per burst at most, never one per chunk.
        expect(checkpoints.length, "bounded writes, never one per chunk").toBeLessThan(chunks.length / 4)
        for (let i = 1; i < checkpoints.length; i++) {
          expect(checkpoints[i]!.length, "no checkpoint without new text").toBeGreaterThan(checkpoints[i - 1]!.length)
        }
        const updatesAfter = yield* nTupUpd(app)
        report("checkpoints", {
          chunks: chunks.length,
          bursts: bursts.length,
          checkpointIntervalMs: 200,
          checkpointWrites: checkpoints.length,
          finalWrites: 1,
          // pg_stat's n_tup_upd of `messages`; the statistics may lag.
          statUpdatesDelta: updatesAfter - updatesBefore
        })
      }),
    60_000
  )
})

const nTupUpd = (app: TestApp) =>
  app.sql<{ n: string | number }>`SELECT n_tup_upd AS n FROM pg_stat_user_tables WHERE relname = 'messages'`.pipe(
    Effect.map((rows) => Number(rows[0]?.n ?? 0)),
    Effect.orDie
  )

describe("database outage", () => {
  it.scopedLive(
    "with PostgreSQL unreachable, chat_message is DB_ERROR and Claude is not called; when it returns chat works without a restart",
    () =>
      Effect.gen(function* () {
        const database = yield* freshDatabase
        const proxy = yield* TcpProxyScoped(targetOf(database))
        const { fake, app, project } = yield* claudeProject({ title: "Outage", env: { DATABASE_URL: proxy.urlFor(database) } })
        const a = yield* open(app, project.id)
        yield* a.ping()

        proxy.pause()
        yield* a.chat("during the outage", { clientMessageId: "outage-1" })
        const error = yield* a.waitFor("error", 20_000)
        expect(error).toMatchObject({ code: "DB_ERROR" })
        expect(error.messageId).toBeUndefined()
        expect(fake.requests, "Claude was not called").toHaveLength(0)
        const health = yield* get(`${app.url}/health`)
        expect(health.status).toBe(503)
        expect(health.json).toMatchObject({ status: "unhealthy", database: "disconnected" })
        yield* a.ping()

        proxy.resume()
        yield* eventually("the service is healthy again", Effect.map(get(`${app.url}/health`), (h) => h.status), (s) => s === 200, 20_000)
        // The client retries with the same clientMessageId, as the README says.
        const start = yield* startAnswer(a, "during the outage", { clientMessageId: "outage-1" })
        const answer = yield* a.untilComplete(start.messageId)
        expect(answer.end).toMatchObject({ type: "message_complete", status: "complete" })
        const rows = yield* storedMessages(app, project.id)
        expect(rows.map((r) => [r.role, r.status, r.content])).toStrictEqual([
          ["user", "complete", "during the outage"],
          ["assistant", "complete", "Hello from the fake Claude."]
        ])
      }),
    60_000
  )

  it.scopedLive(
    "the database going away while an answer streams: the client still gets every chunk and message_complete; after it returns the answer is stored complete",
    () =>
      Effect.gen(function* () {
        const database = yield* freshDatabase
        const proxy = yield* TcpProxyScoped(targetOf(database))
        const chunks = numberedChunks(20)
        // Held after 3 chunks until the database is gone: the answer surely ends during the outage.
        const resume = gate()
        const { app, project } = yield* claudeProject({
          title: "Outage mid-answer",
          env: { DATABASE_URL: proxy.urlFor(database), CHECKPOINT_INTERVAL_MS: "200", SHUTDOWN_GRACE_SECONDS: "5" },
          replies: [{ kind: "text", chunks, pauseAfter: 3, resume: resume.promise }]
        })
        const a = yield* open(app, project.id)
        const start = yield* startAnswer(a, "A long answer")
        yield* seenChunk(a, start.messageId, 3)
        proxy.pause()
        resume.open()

        const answer = yield* a.untilComplete(start.messageId, 30_000)
        expect(answer.end).toMatchObject({ type: "message_complete", status: "complete", fullContent: chunks.join("") })
        expect(expectExactView(answerEvents(a, start.messageId), { resumed: false, messageId: start.messageId }).text).toBe(
          chunks.join("")
        )
        // Not stored yet (the database is away): the row is still `streaming`, read directly, not through the proxy.
        const direct = yield* directSql(database)
        const meanwhile = yield* messageRow(direct, start.messageId)
        expect(meanwhile?.status).toBe("streaming")

        proxy.resume()
        const row = yield* finalRow(app, project.id, start.messageId, 30_000)
        expect(row).toMatchObject({ status: "complete", content: chunks.join("") })
        // And the project works again.
        const next = yield* a.ask("and now?", 20_000)
        expect(next.end).toMatchObject({ type: "message_complete", status: "complete" })
      }),
    60_000
  )
})
