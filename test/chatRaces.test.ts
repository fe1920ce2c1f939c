/**
 * Consistent rows under races (issue 10, the chat core's part): a project deleted while its
 * answer streams, a socket that sends and closes at once, streaming rows nobody owns. Real
 * service, real sockets, the real SDK against the fake; no timing assertions (liveness
 * bounds only).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import WebSocket from "ws"
import { claudeChat, claudeProject, eventually, fakeIdle, newProject, startClaudeApp } from "./support/ChatApp.js"
import { FakeRouterScoped } from "./support/FakeRouter.js"
import { request } from "./support/Http.js"
import { connect } from "./support/ChatClient.js"
import { chunksOf, numberedChunks, seenChunk, startAnswer } from "./support/Reliability.js"

describe("delete while streaming", () => {
  it.scopedLive("stops the answer upstream, tells the project's sockets PROJECT_NOT_FOUND, closes them (4404), never says complete", () =>
    Effect.gen(function* () {
      const { fake, app, project, client } = yield* claudeChat({
        replies: [{ kind: "text", chunks: numberedChunks(400), chunkDelayMs: 25 }]
      })
      const start = yield* startAnswer(client, "Something long")
      yield* seenChunk(client, start.messageId, 2)
      const deleted = yield* request(`${app.url}/api/projects/${project.id}`, { method: "DELETE" })
      expect(deleted.status).toBe(204)
      const error = yield* client.next((e) => e.type === "error", 10_000, "the error event")
      expect(error).toMatchObject({ code: "PROJECT_NOT_FOUND" })
      const closed = yield* client.awaitClose()
      expect(closed).toMatchObject({ code: 4404, reason: "project deleted" })
      yield* fakeIdle(fake, 5_000)
      expect(fake.fake.abortedStreams, "the upstream request was aborted").toBe(1)
      expect(client.events.filter((e) => e.type === "message_complete")).toEqual([])
      expect(chunksOf(client, start.messageId).length).toBeLessThan(400)
      const rows = yield* app.sql`SELECT id FROM messages WHERE project_id = ${project.id}`.pipe(Effect.orDie)
      expect(rows).toEqual([])
    }))
})

describe("a socket that sends and closes at once", () => {
  it.scopedLive("leaves either nothing, or the question and an answer stored as usual: no row stuck streaming", () =>
    Effect.gen(function* () {
      const fake = yield* FakeRouterScoped()
      fake.setChatDefault({ kind: "text", chunks: ["a ", "short ", "answer"], chunkDelayMs: 5 })
      const app = yield* startClaudeApp(fake)
      const projects = yield* Effect.forEach(Array.from({ length: 6 }), () => newProject(app))
      const tries = 120
      yield* Effect.forEach(
        Array.from({ length: tries }, (_, i) => i),
        (i) =>
          Effect.async<void>((resume) => {
            const project = projects[i % projects.length]!
            const ws = new WebSocket(`${app.wsUrl}/ws/chat?projectId=${project.id}`)
            ws.on("open", () => {
              ws.send(JSON.stringify({ type: "chat_message", content: `try ${i}` }))
              // Close after 0–11 ms: anywhere from before the frame is read to after the answer started.
              setTimeout(() => ws.terminate(), i % 12)
            })
            ws.on("close", () => resume(Effect.void))
            ws.on("error", () => resume(Effect.void))
          }),
        { concurrency: 6 }
      )
      // Every answer that started finishes by itself (its socket is gone, not its answer).
      const rows = yield* eventually(
        "no answer is streaming any more",
        app.sql<{ role: string; status: string; content: string }>`SELECT role, status, content FROM messages ORDER BY project_id, ordinal`.pipe(Effect.orDie),
        (all) => all.every((row) => row.status !== "streaming"),
        30_000
      )
      const byProject = new Map<string, Array<{ role: string; status: string }>>()
      const all = yield* app.sql<{ projectId: string; role: string; status: string }>`SELECT project_id AS "projectId", role, status FROM messages ORDER BY project_id, ordinal`.pipe(Effect.orDie)
      for (const row of all) byProject.set(row.projectId, [...(byProject.get(row.projectId) ?? []), row])
      for (const turns of byProject.values()) {
        // user, assistant, user, assistant, …: every stored question has its answer, stored complete.
        expect(turns.map((t) => t.role)).toEqual(turns.map((_, i) => (i % 2 === 0 ? "user" : "assistant")))
        expect(turns.filter((t) => t.role === "assistant").every((t) => t.status === "complete")).toBe(true)
      }
      expect(rows.length % 2).toBe(0)
      expect(rows.length, "some sends got through").toBeGreaterThan(0)
    }), 120_000)
})

describe("streaming rows nobody owns", () => {
  it.scopedLive("are taken over while the service runs: a recent one continued to complete, an old one marked interrupted; both projects free again", () =>
    Effect.gen(function* () {
      const { fake, app, project } = yield* claudeProject({ env: { CHECKPOINT_INTERVAL_MS: "100", RESUME_INTERRUPTED_WITHIN_SECONDS: "600" } })
      const old = yield* newProject(app)
      // Rows left `streaming` by an instance that died (no instance holds their project's lock).
      for (const [projectId, age] of [[project.id, "1 minute"], [old.id, "1 hour"]] as const) {
        yield* app.sql`INSERT INTO messages (project_id, role, content, status) VALUES (${projectId}, 'user', 'q', 'complete')`.pipe(Effect.orDie)
        yield* app.sql`INSERT INTO messages (project_id, role, content, status, updated_at)
          VALUES (${projectId}, 'assistant', 'orphan ', 'streaming', NOW() - ${age}::interval)`.pipe(Effect.orDie)
      }
      fake.enqueueChat({ kind: "text", chunks: ["continued"] })
      const answerOf = (projectId: string) =>
        app.sql<{ status: string; content: string }>`SELECT status, content FROM messages WHERE role = 'assistant' AND project_id = ${projectId}`
          .pipe(Effect.orDie, Effect.map((rows) => rows[0]))
      const continued = yield* eventually("the recent orphan is continued", answerOf(project.id), (row) => row?.status === "complete", 30_000)
      expect(continued).toEqual({ status: "complete", content: "orphan continued" })
      const marked = yield* eventually("the old orphan is marked", answerOf(old.id), (row) => row?.status === "interrupted", 30_000)
      expect(marked).toEqual({ status: "interrupted", content: "orphan " })
      fake.enqueueChat({ kind: "text", chunks: ["fine"] })
      const client = yield* connect(app.wsUrl, project.id)
      const answer = yield* client.ask("and now?")
      expect(answer.end).toMatchObject({ type: "message_complete", status: "complete", fullContent: "fine" })
    }))
})
