/**
 * Issue 4 with the real process (`node --import tsx src/main.ts`): SIGKILL mid-answer and a
 * restart (crash recovery from checkpoints), SIGTERM with answers in flight (graceful
 * shutdown: draining, SHUTTING_DOWN, interrupted after the grace, close 1001, exit 0).
 * The fake Anthropic server runs in the test process; every process is SIGKILLed by a
 * finalizer if a test leaves it running. No wall-clock assertions.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Net from "node:net"
import { eventually, fakeIdle, getProject, newProject, TEST_API_KEY } from "./support/ChatApp.js"
import { type ChatClient, connect } from "./support/ChatClient.js"
import { gate } from "./support/FakeAnthropic.js"
import { FakeRouterScoped } from "./support/FakeRouter.js"
import {
  answerEvents,
  chunksOf,
  directSql,
  expectExactView,
  messageRow,
  numberedChunks,
  seenChunk,
  startAnswer
} from "./support/Reliability.js"
import { report } from "./support/Report.js"
import { awaitExit, awaitLine, connectionRefused, type ServiceProcess, spawnHealthyService } from "./support/ServiceProcess.js"
import { TcpProxyScoped, targetOf } from "./support/TcpProxy.js"
import { freshDatabase } from "./support/TestDatabase.js"

const clients: Array<ChatClient> = []
const processes: Array<ServiceProcess> = []

afterAll(() => {
  for (const client of clients) for (const frame of client.frames) expect(frame).not.toContain(TEST_API_KEY)
  for (const service of processes) {
    expect(service.stdout(), "stdout carries no API key").not.toContain(TEST_API_KEY)
    expect(service.stderr(), "stderr carries no API key").not.toContain(TEST_API_KEY)
  }
})

const start = (env: Record<string, string>) =>
  Effect.tap(spawnHealthyService(env), (service) => Effect.sync(() => processes.push(service)))

const open = (service: ServiceProcess, projectId: string) =>
  Effect.tap(connect(service.wsUrl, projectId), (client) => Effect.sync(() => clients.push(client)))

/**
 * A fake whose next chat answer is `count` numbered chunks, held after `pauseAfter` of them
 * until `resume.open()` (never, unless the test opens it): where the answer stands when the
 * process is signalled is decided by the test, not by the machine's speed.
 */
const fakeAnswering = (count: number, pauseAfter: number) =>
  Effect.map(FakeRouterScoped(), (fake) => {
    const chunks = numberedChunks(count)
    const resume = gate()
    fake.enqueueChat({ kind: "text", chunks, pauseAfter, resume: resume.promise })
    return { fake, text: chunks.join(""), chunks, resume }
  })

/**
 * A GET /health whose request line and headers are sent now, but whose final blank line is
 * held back: the connection has a request in progress, so closing the listener does not
 * close it, and `finish()` sends the rest and reads the answer — a probe made while draining.
 */
const heldHealthRequest = (service: ServiceProcess) =>
  Effect.promise(
    () =>
      new Promise<{ readonly finish: () => Promise<{ readonly status: number; readonly body: unknown }> }>((resolve, reject) => {
        const socket = Net.connect(service.port, "127.0.0.1")
        let received = ""
        socket.setEncoding("utf8")
        socket.on("data", (text: string) => (received += text))
        socket.once("error", reject)
        socket.once("connect", () => {
          socket.write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n", () =>
            resolve({
              finish: () =>
                new Promise((done, fail) => {
                  socket.once("error", fail)
                  socket.once("end", () => {
                    const [head = "", body = ""] = received.split("\r\n\r\n")
                    const status = Number(head.split(" ")[1])
                    // The body may be chunked: keep the JSON object between the first "{" and the last "}".
                    const json = body.slice(body.indexOf("{"), body.lastIndexOf("}") + 1)
                    done({ status, body: JSON.parse(json) as unknown })
                  })
                  socket.write("\r\n")
                })
            })
          )
        })
      })
  )

/** A new project on `service` (titled when `title` is given), a client on it, and an answer started there. */
const answerStarted = (service: ServiceProcess, content: string, title?: string) =>
  Effect.gen(function* () {
    const project = yield* newProject(service, title)
    const client = yield* open(service, project.id)
    const answer = yield* startAnswer(client, content)
    return { project, client, messageId: answer.messageId }
  })

/** Environment of a service process talking to the fake, on its own fresh database. */
const serviceEnv = (databaseUrl: string, fakeUrl: string, extra: Record<string, string> = {}) => ({
  DATABASE_URL: databaseUrl,
  CLAUDE_API_KEY: TEST_API_KEY,
  CLAUDE_BASE_URL: fakeUrl,
  CLAUDE_MAX_RETRIES: "0",
  CHECKPOINT_INTERVAL_MS: "200",
  LOG_LEVEL: "info",
  ...extra
})

/**
 * A service process on a database behind a proxy, whose answer (10 chunks) the client has
 * seen complete while the database was unreachable: the answer is not stored yet.
 */
const answeredDuringOutage = (title: string, graceSeconds: string) =>
  Effect.gen(function* () {
    const { fake, text, resume } = yield* fakeAnswering(10, 2)
    const database = yield* freshDatabase
    const proxy = yield* TcpProxyScoped(targetOf(database))
    const service = yield* start(serviceEnv(proxy.urlFor(database), fake.url, { SHUTDOWN_GRACE_SECONDS: graceSeconds }))
    const { client, messageId } = yield* answerStarted(service, "Something", title)
    yield* seenChunk(client, messageId, 2)
    proxy.pause()
    resume.open()
    // The client gets the whole answer even though it cannot be stored now.
    const end = yield* client.untilComplete(messageId, 30_000)
    expect(end.end).toMatchObject({ type: "message_complete", status: "complete", fullContent: text })
    return { database, proxy, service, messageId, text }
  })

describe("crash recovery (SIGKILL)", () => {
  it.scopedLive(
    "an answer cut by SIGKILL becomes `interrupted` at the next start with its checkpointed text, and the project works normally afterwards",
    () =>
      Effect.gen(function* () {
        // Held after 50 of 400 chunks: the kill surely comes mid-answer, after a checkpoint.
        const { fake, text, chunks } = yield* fakeAnswering(400, 50)
        // The title call fails with an error whose text carries the key: it must reach no log line.
        fake.setTitle({ kind: "httpError", errorType: "authentication_error", message: `invalid x-api-key: ${TEST_API_KEY}` })
        const database = yield* freshDatabase
        const sql = yield* directSql(database)
        // Continuing answers after a restart is off here: this is recovery alone (continuation.test.ts has the rest).
        const env = serviceEnv(database, fake.url, { RESUME_INTERRUPTED_WITHIN_SECONDS: "0" })

        const first = yield* start(env)
        const { project, client, messageId: id } = yield* answerStarted(first, "Build me a big app")

        // Wait until a checkpoint has stored some text, then kill the process outright.
        yield* seenChunk(client, id, 50)
        const checkpointed = yield* eventually(
          "a checkpoint stored the 50 chunks sent",
          messageRow(sql, id),
          (row) => row?.status === "streaming" && row.content === chunks.slice(0, 50).join(""),
          30_000
        )
        first.signal("SIGKILL")
        const exit = yield* awaitExit(first)
        expect(exit.signal).toBe("SIGKILL")
        const closed = yield* client.awaitClose()
        expect(closed.code, "the connection dropped without a close handshake").toBe(1006)
        const seen = chunksOf(client, id).map((c) => c.content).join("")
        yield* fakeIdle(fake)
        expect(fake.fake.abortedStreams, "the upstream stream died with the process").toBe(1)

        // Before the restart the row is still what the last checkpoint wrote.
        const atKill = yield* messageRow(sql, id)
        expect(atKill?.status).toBe("streaming")
        expect(atKill!.content.startsWith(checkpointed!.content)).toBe(true)
        expect(seen.startsWith(atKill!.content), "the checkpoint is a prefix of what the client saw").toBe(true)
        expect(atKill!.content.length, "the checkpoint is not the whole answer").toBeLessThan(text.length)

        // A new process (on a port of its own) finds the answer left streaming.
        const second = yield* start(env)
        const recovered = yield* messageRow(sql, id)
        expect(recovered).toStrictEqual({ status: "interrupted", content: atKill!.content })
        const warned = second.logs().find((line) => line["message"] === "answers left streaming by a crash were marked interrupted")
        expect(warned?.["count"]).toBe(1)

        const viaRest = yield* getProject(second, project.id)
        expect(viaRest.messages.map((m) => [m.role, m.status, m.content])).toStrictEqual([
          ["user", "complete", "Build me a big app"],
          ["assistant", "interrupted", atKill!.content]
        ])

        // Normal service afterwards; the interrupted text is valid context.
        fake.enqueueChat({ kind: "text", chunks: ["all ", "good ", "again"] })
        const again = yield* open(second, project.id)
        const next = yield* again.ask("Carry on please", 20_000)
        expect(next.end).toMatchObject({ type: "message_complete", status: "complete", fullContent: "all good again" })
        const bodies = fake.chatRequests()
        expect(bodies).toHaveLength(2)
        expect(bodies[1]?.messages.map((m) => m.role)).toStrictEqual(["user", "assistant", "user"])
        expect(bodies[1]?.messages[1]?.content).toBe(atKill!.content)

        second.signal("SIGTERM")
        expect(yield* awaitExit(second)).toStrictEqual({ code: 0, signal: null })
      }),
    120_000
  )
})

describe("graceful shutdown (SIGTERM)", () => {
  it.scopedLive(
    "SIGTERM with a long answer in flight: draining, SHUTTING_DOWN for new messages, `interrupted` after the grace, close 1001, exit 0",
    () =>
      Effect.gen(function* () {
        // Held after 3 chunks and never released: it outlasts the grace whatever the machine's speed.
        const { fake, text } = yield* fakeAnswering(100, 3)
        const database = yield* freshDatabase
        const sql = yield* directSql(database)
        const service = yield* start(serviceEnv(database, fake.url, { SHUTDOWN_GRACE_SECONDS: "6" }))
        const project = yield* newProject(service, "Shutdown")
        const a = yield* open(service, project.id)
        const b = yield* open(service, project.id)
        const answer = yield* startAnswer(a, "Something long")
        const id = answer.messageId
        yield* seenChunk(a, id, 3)
        const probe = yield* heldHealthRequest(service)

        service.signal("SIGTERM")
        yield* awaitLine(service, (line) => line.includes("shutting down: draining"))
        // A request made while draining (on a connection already open) is told so; a new connection is refused.
        const duringDrain = yield* Effect.promise(() => probe.finish())
        report("shutdown", { healthDuringDrain: duringDrain })
        expect(duringDrain).toMatchObject({ status: 503, body: { status: "draining" } })
        expect(yield* Effect.promise(() => connectionRefused(service.port)), "the listener is closed").toBe(true)

        // An open socket gets SHUTTING_DOWN for a new message (not BUSY, not silence).
        yield* b.chat("one more thing", { clientMessageId: "late-1" })
        const refused = yield* b.next((e) => e.type === "error", 10_000, "the SHUTTING_DOWN error")
        expect(refused).toMatchObject({ type: "error", code: "SHUTTING_DOWN" })

        // After the grace: interrupted, then the socket closes with 1001.
        const end = yield* a.untilComplete(id, 30_000)
        const seen = chunksOf(a, id).map((c) => c.content).join("")
        expect(end.end).toMatchObject({ type: "message_complete", status: "interrupted", fullContent: seen, stopReason: null })
        expect(seen).toBe(numberedChunks(3).join(""))
        expect(seen.length).toBeLessThan(text.length)
        expect(expectExactView(answerEvents(a, id), { resumed: false, messageId: id }).text).toBe(seen)
        const endB = yield* b.untilComplete(id, 30_000)
        expect(endB.end).toMatchObject({ status: "interrupted", fullContent: seen })
        expect(yield* a.awaitClose(15_000)).toMatchObject({ code: 1001 })
        expect(yield* b.awaitClose(15_000)).toMatchObject({ code: 1001 })
        expect(yield* awaitExit(service)).toStrictEqual({ code: 0, signal: null })

        yield* fakeIdle(fake)
        expect(fake.fake.abortedStreams, "the upstream request was closed").toBe(1)
        expect(yield* messageRow(sql, id)).toStrictEqual({ status: "interrupted", content: seen })
        const users = yield* sql<{ n: string }>`SELECT count(*)::text AS n FROM messages WHERE role = 'user'`.pipe(Effect.orDie)
        expect(users[0]?.n, "the message refused with SHUTTING_DOWN was not stored").toBe("1")
        expect(service.stdout()).not.toContain(TEST_API_KEY)
      }),
    90_000
  )

  it.scopedLive("SIGTERM with a short answer in flight: it completes normally before the process exits 0", () =>
    Effect.gen(function* () {
      // Held after 1 chunk until draining has started: the answer is surely in flight at SIGTERM.
      const { fake, text, resume } = yield* fakeAnswering(10, 1)
      const database = yield* freshDatabase
      const sql = yield* directSql(database)
      const service = yield* start(serviceEnv(database, fake.url, { SHUTDOWN_GRACE_SECONDS: "20" }))
      const { client: a, messageId } = yield* answerStarted(service, "Something short", "Short")
      yield* seenChunk(a, messageId, 1)
      service.signal("SIGTERM")
      yield* awaitLine(service, (line) => line.includes("shutting down: draining"))
      resume.open()

      const end = yield* a.untilComplete(messageId, 30_000)
      expect(end.end).toMatchObject({ type: "message_complete", status: "complete", fullContent: text, stopReason: "end_turn" })
      expect(yield* a.awaitClose(15_000)).toMatchObject({ code: 1001 })
      expect(yield* awaitExit(service)).toStrictEqual({ code: 0, signal: null })
      expect(yield* messageRow(sql, messageId)).toStrictEqual({ status: "complete", content: text })
      expect(fake.fake.abortedStreams).toBe(0)
    }), 90_000)

  it.scopedLive(
    "SIGTERM while a finished answer waits for the database to come back: the process still exits 0 within its bounds and logs the unstored answer by id",
    () =>
      Effect.gen(function* () {
        const { proxy, service, messageId } = yield* answeredDuringOutage("Outage at shutdown", "2")
        yield* eventually(
          "the service logs that it retries storing the answer",
          Effect.sync(() => service.logs()),
          (lines) => lines.some((l) => l["level"] === "error" && l["messageId"] === messageId),
          20_000
        )

        service.signal("SIGTERM")
        // Bounded: the grace (2 s), the final-write grace and the socket-close grace are a few seconds; 45 s is liveness only.
        expect(yield* awaitExit(service, 45_000)).toStrictEqual({ code: 0, signal: null })
        const notStored = service.logs().filter((l) => l["messageId"] === messageId && l["level"] === "error")
        expect(notStored.map((l) => l["message"])).toContain("service stopped before the database came back: answer not stored")
        proxy.resume()
      }),
    90_000
  )

  it.scopedLive(
    "SIGTERM while a finished answer waits for the database, and the database returns during the shutdown: the answer clients saw is stored before exit",
    () =>
      Effect.gen(function* () {
        const { database, proxy, service, messageId, text } = yield* answeredDuringOutage("Outage at shutdown 2", "10")
        const sql = yield* directSql(database)

        service.signal("SIGTERM")
        yield* awaitLine(service, (line) => line.includes("shutting down: draining"))
        proxy.resume()
        expect(yield* awaitExit(service, 45_000)).toStrictEqual({ code: 0, signal: null })
        expect(
          yield* messageRow(sql, messageId),
          "the answer the client saw complete is stored complete, not left to become `interrupted` with an older checkpoint"
        ).toStrictEqual({ status: "complete", content: text })
      }),
    90_000
  )
})
