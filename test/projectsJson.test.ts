/**
 * The REST reads answered with JSON built by PostgreSQL (issue 13): the bodies must be byte
 * for byte what the Schema-encoded classes gave before, and the entity tags must change
 * whenever anything the body shows changes, and only be answered 304 without a body.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Statement } from "@effect/sql"
import { Effect, Schema } from "effect"
import { MessageRow } from "../src/domain/Message.js"
import type { Usage } from "../src/domain/Usage.js"
import { ProjectList, ProjectSummary, ProjectWithMessages } from "../src/domain/Project.js"
import { extractCodeBlocks } from "../src/markdown/CodeBlocks.js"
import { listQuery, projectQuery } from "../src/projects/ProjectsJson.js"
import { startApp } from "./support/BoundedApp.js"
import { newProject } from "./support/ChatApp.js"
import { get, type HttpAnswer, request, sendJson } from "./support/Http.js"
import type { TestApp } from "./support/TestApp.js"

interface Seeded {
  readonly role: "user" | "assistant"
  readonly content: string
  readonly status: string
  readonly stopReason?: string
  readonly createdAt?: string
  readonly continuations?: number
  readonly usage?: Usage
}

const insertMessage = (app: TestApp, projectId: string, message: Seeded) =>
  app.sql`
    INSERT INTO messages (project_id, role, content, status, code_blocks, stop_reason, created_at, continuations,
                          input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens)
    VALUES (${projectId}, ${message.role}, ${message.content}, ${message.status},
            ${JSON.stringify(message.role === "assistant" ? extractCodeBlocks(message.content) : [])}::jsonb,
            ${message.stopReason ?? null}, ${message.createdAt ?? new Date().toISOString()}::timestamptz, ${message.continuations ?? 0},
            ${message.usage?.inputTokens ?? null}, ${message.usage?.outputTokens ?? null},
            ${message.usage?.cacheReadInputTokens ?? null}, ${message.usage?.cacheCreationInputTokens ?? null})`.pipe(Effect.orDie)

/** What the service answered before issue 13: rows decoded by the row schemas, encoded by the response classes. */
const schemaEncodedProject = (app: TestApp, projectId: string) =>
  Effect.gen(function* () {
    const [project] = yield* app.sql<{ id: string; title: string; createdAt: Date; updatedAt: Date }>`
      SELECT id, title, created_at AS "createdAt", updated_at AS "updatedAt" FROM projects WHERE id = ${projectId}`
    const rows = yield* app.sql`
      SELECT id, project_id AS "projectId", role, content, status, code_blocks AS "codeBlocks",
             client_message_id AS "clientMessageId", stop_reason AS "stopReason", continuations, created_at AS "createdAt",
             input_tokens AS "inputTokens", output_tokens AS "outputTokens",
             cache_read_input_tokens AS "cacheReadInputTokens", cache_creation_input_tokens AS "cacheCreationInputTokens"
      FROM messages WHERE project_id = ${projectId} ORDER BY ordinal`
    const decoded = rows.map((row) => Schema.decodeUnknownSync(MessageRow)(row))
    const usage = { inputTokens: 0, outputTokens: 0, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 }
    for (const row of decoded) {
      usage.inputTokens += row.usage?.inputTokens ?? 0
      usage.outputTokens += row.usage?.outputTokens ?? 0
      usage.cacheReadInputTokens += row.usage?.cacheReadInputTokens ?? 0
      usage.cacheCreationInputTokens += row.usage?.cacheCreationInputTokens ?? 0
    }
    const messages = decoded.map((row) => row.toMessage())
    const value = ProjectWithMessages.make({ ...project!, id: project!.id as never, messages, usage })
    return JSON.stringify(Schema.encodeSync(ProjectWithMessages)(value))
  }).pipe(Effect.orDie)

const schemaEncodedList = (app: TestApp) =>
  Effect.gen(function* () {
    const rows = yield* app.sql<{ id: string; title: string; createdAt: Date; updatedAt: Date; messageCount: number }>`
      SELECT id, title, created_at AS "createdAt", updated_at AS "updatedAt", message_count AS "messageCount"
      FROM projects ORDER BY updated_at DESC, id`
    const projects = rows.map((row) => ProjectSummary.make({ ...row, id: row.id as never }))
    return JSON.stringify(Schema.encodeSync(ProjectList)(ProjectList.make({ projects })))
  }).pipe(Effect.orDie)

const TRICKY_TEXTS = [
  "",
  "plain words",
  "quotes \" and 'single', backslash \\ and \\n literally, slash / and </script>",
  "newlines\nand\r\ncarriage returns, tabs\tand form feed \f and backspace \b",
  "control characters \u0001 \u001f and DEL \u007f, line separators \u2028 \u2029",
  "unicode: café, 漢字, עברית, emoji 👩‍💻🚀, combining e\u0301, astral 𝄞",
  "Here you go:\n```python\nprint(\"hi\\n\")\n```\nand a bare fence:\n```\nno language\n```\n",
  "```ts\nconst x: string = \"unclosed fence\"\n",
  "x".repeat(20_000)
]

describe("GET /api/projects/:id as JSON built by PostgreSQL", () => {
  it.scopedLive("is byte for byte the Schema-encoded body for every kind of message", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      const project = yield* newProject(app, "Title with \"quotes\", \\ and ünïcödé 🚀")
      // One answer at most streams per project (a database constraint): the second message's.
      const statuses = ["complete", "cancelled", "error", "interrupted"] as const
      const stopReasons = ["end_turn", "max_tokens", undefined]
      let i = 0
      for (const text of TRICKY_TEXTS) {
        yield* insertMessage(app, project.id, { role: "user", content: text, status: "complete" })
        yield* insertMessage(app, project.id, {
          role: "assistant",
          content: text,
          status: i === 1 ? "streaming" : statuses[i % statuses.length]!,
          ...(stopReasons[i % 3] === undefined ? {} : { stopReason: stopReasons[i % 3]! }),
          continuations: i % 4,
          // Every other answer has usage; the rest are null (stored before usage was kept).
          ...(i % 2 === 0
            ? { usage: { inputTokens: 1000 + i, outputTokens: 20 * i, cacheReadInputTokens: 900 * i, cacheCreationInputTokens: i === 0 ? 0 : 7 } }
            : {})
        })
        i++
      }
      // Microsecond timestamps next to millisecond boundaries, before 1970 and on a leap day.
      for (const createdAt of ["2026-01-01T00:00:00.999999Z", "2026-01-01T00:00:00.000001Z", "1969-12-31T23:59:59.9995Z", "2024-02-29T12:34:56.789Z"]) {
        yield* insertMessage(app, project.id, { role: "assistant", content: "```sql\nSELECT 1;\n```", status: "complete", createdAt })
      }
      const answer = yield* get(`${app.url}/api/projects/${project.id}`)
      expect(answer.status).toBe(200)
      expect(answer.headers.get("content-type")).toMatch(/^application\/json/)
      const expected = yield* schemaEncodedProject(app, project.id)
      expect(answer.text).toBe(expected)
      // The variety really is there: assistant messages carry code blocks, user messages none.
      const parsed = answer.json as { messages: Array<{ role: string; codeBlocks?: ReadonlyArray<unknown> }> }
      expect(parsed.messages).toHaveLength(TRICKY_TEXTS.length * 2 + 4)
      expect(parsed.messages.some((m) => (m.codeBlocks?.length ?? 0) >= 2)).toBe(true)
      expect(parsed.messages.filter((m) => m.role === "user").every((m) => m.codeBlocks === undefined)).toBe(true)
      // Usage per answer (null for those without) and the project's totals are there too.
      const withUsage = answer.json as { usage: Usage; messages: Array<{ role: string; usage?: Usage | null }> }
      expect(withUsage.messages.filter((m) => m.role === "assistant" && m.usage === null).length).toBeGreaterThan(0)
      expect(withUsage.messages.filter((m) => m.role === "assistant" && m.usage !== null).length).toBeGreaterThan(0)
      expect(withUsage.usage.cacheReadInputTokens).toBeGreaterThan(0)
    }))

  it.scopedLive("keeps each ended message's JSON on its row, and renders the same bytes without it", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      const project = yield* newProject(app)
      yield* insertMessage(app, project.id, { role: "user", content: "make a \"todo\" app", status: "complete" })
      yield* insertMessage(app, project.id, { role: "assistant", content: "Sure:\n```js\nlet x = 1\n```\n", status: "complete" })
      yield* insertMessage(app, project.id, { role: "user", content: "and tests?", status: "complete" })
      yield* insertMessage(app, project.id, { role: "assistant", content: "Writing", status: "streaming" })
      const kept = yield* app.sql<{ status: string; apiJson: string | null }>`
        SELECT status, api_json AS "apiJson" FROM messages WHERE project_id = ${project.id} ORDER BY ordinal`
      expect(kept.map((row) => [row.status, row.apiJson === null])).toEqual([
        ["complete", false],
        ["complete", false],
        ["complete", false],
        ["streaming", true]
      ])
      const withKept = yield* get(`${app.url}/api/projects/${project.id}`)
      expect(withKept.text).toBe(yield* schemaEncodedProject(app, project.id))
      // The kept text is what is served: the row's own rendering, message by message.
      const served = (withKept.json as { messages: ReadonlyArray<unknown> }).messages.slice(0, 3).map((m) => JSON.stringify(m))
      expect(served).toEqual(kept.slice(0, 3).map((row) => row.apiJson))

      // Rows without it (as a database migrated mid-answer could hold) read the same.
      yield* app.sql`ALTER TABLE messages DISABLE TRIGGER messages_keep_api_json`.pipe(Effect.orDie)
      yield* app.sql`UPDATE messages SET api_json = NULL WHERE project_id = ${project.id}`.pipe(Effect.orDie)
      yield* app.sql`ALTER TABLE messages ENABLE TRIGGER messages_keep_api_json`.pipe(Effect.orDie)
      const rendered = yield* get(`${app.url}/api/projects/${project.id}`)
      expect(rendered.text).toBe(withKept.text)

      // The answer ends: its JSON is kept from then on, with the final text and status.
      yield* app.sql`UPDATE messages SET content = 'Writing done', status = 'complete', stop_reason = 'end_turn'
                     WHERE project_id = ${project.id} AND status = 'streaming'`.pipe(Effect.orDie)
      const [ended] = yield* app.sql<{ apiJson: string | null }>`
        SELECT api_json AS "apiJson" FROM messages WHERE project_id = ${project.id} ORDER BY ordinal DESC LIMIT 1`
      expect(JSON.parse(ended!.apiJson ?? "null")).toMatchObject({ content: "Writing done", status: "complete", stopReason: "end_turn" })
      const after = yield* get(`${app.url}/api/projects/${project.id}`)
      expect(after.text).toBe(yield* schemaEncodedProject(app, project.id))
    }))

  it.scopedLive("is the Schema-encoded body for a project with no messages, and 404 for an absent one", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      const project = yield* newProject(app)
      const answer = yield* get(`${app.url}/api/projects/${project.id}`)
      expect(answer.text).toBe(yield* schemaEncodedProject(app, project.id))
      expect(answer.json).toMatchObject({ messages: [] })
      const absent = yield* get(`${app.url}/api/projects/00000000-0000-4000-8000-000000000000`, { "if-none-match": "*" })
      expect({ status: absent.status, body: absent.json }).toEqual({
        status: 404,
        body: { error: "project not found", code: "PROJECT_NOT_FOUND" }
      })
    }))
})

describe("GET /api/projects as JSON built by PostgreSQL", () => {
  it.scopedLive("is byte for byte the Schema-encoded list, empty or not", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      const empty = yield* get(`${app.url}/api/projects`)
      expect(empty.text).toBe("{\"projects\":[]}")
      for (const title of TRICKY_TEXTS.slice(1, 7)) yield* newProject(app, title.slice(0, 255).trim() || "x")
      const [first] = yield* app.sql<{ id: string }>`SELECT id FROM projects LIMIT 1`
      yield* insertMessage(app, first!.id, { role: "user", content: "hello", status: "complete" })
      // Equal timestamps: the tie is broken by id, as before.
      yield* app.sql`UPDATE projects SET updated_at = '2026-05-05T05:05:05.123456Z'`
      const answer = yield* get(`${app.url}/api/projects`)
      expect(answer.status).toBe(200)
      expect(answer.headers.get("content-type")).toMatch(/^application\/json/)
      expect(answer.text).toBe(yield* schemaEncodedList(app))
      expect((answer.json as { projects: ReadonlyArray<unknown> }).projects).toHaveLength(6)
    }))
})

// ---------------------------------------------------------------------------------------------

const etagOf = (answer: HttpAnswer) => {
  const etag = answer.headers.get("etag")
  expect(etag).toMatch(/^"[0-9a-f]{32}"$/)
  return etag!
}

/** The tag now; asserts it revalidates (304, no body, same tag) before returning it. */
const currentTag = (url: string) =>
  Effect.gen(function* () {
    const answer = yield* get(url)
    expect(answer.status).toBe(200)
    expect(answer.headers.get("cache-control")).toBe("no-cache")
    const etag = etagOf(answer)
    const again = yield* get(url, { "if-none-match": etag })
    expect(again.status).toBe(304)
    expect(again.text).toBe("")
    expect(again.headers.get("etag")).toBe(etag)
    return etag
  })

/** The tag must have changed, and the old one must now get the new body. */
const expectChanged = (url: string, old: string) =>
  Effect.gen(function* () {
    const answer = yield* get(url, { "if-none-match": old })
    expect(answer.status).toBe(200)
    expect(etagOf(answer)).not.toBe(old)
    return yield* currentTag(url)
  })

describe("conditional GETs (ETag / If-None-Match)", () => {
  it.scopedLive("the list's tag changes on create, rename, a new message, a finished answer, a generated title and delete", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      const url = `${app.url}/api/projects`
      let tag = yield* currentTag(url)
      const project = yield* newProject(app, "First")
      tag = yield* expectChanged(url, tag)
      const other = yield* newProject(app, "Second")
      tag = yield* expectChanged(url, tag)
      expect((yield* sendJson("PATCH", `${url}/${project.id}`, { title: "Renamed" })).status).toBe(200)
      tag = yield* expectChanged(url, tag)
      yield* insertMessage(app, project.id, { role: "assistant", content: "", status: "streaming" })
      tag = yield* expectChanged(url, tag)
      // Finishing an answer: the statement the chat path runs touches the project's updatedAt.
      yield* app.sql`UPDATE projects SET updated_at = NOW() WHERE id = ${project.id}`
      tag = yield* expectChanged(url, tag)
      // A generated title does not move updatedAt, and must still be seen.
      yield* app.sql`UPDATE projects SET title = 'Generated', title_source = 'generated' WHERE id = ${other.id}`
      tag = yield* expectChanged(url, tag)
      expect((yield* get(`${url}/${other.id}`, {})).status).toBe(200)
      expect((yield* request(`${url}/${other.id}`, { method: "DELETE" })).status).toBe(204)
      tag = yield* expectChanged(url, tag)
      // Nothing changed: still current.
      expect((yield* get(url, { "if-none-match": tag })).status).toBe(304)
    }))

  it.scopedLive("a project's tag changes on a new message, a checkpoint, a finished answer and a rename", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      const project = yield* newProject(app, "Chat")
      const url = `${app.url}/api/projects/${project.id}`
      let tag = yield* currentTag(url)
      yield* insertMessage(app, project.id, { role: "user", content: "Build me a to-do app", status: "complete" })
      tag = yield* expectChanged(url, tag)
      yield* insertMessage(app, project.id, { role: "assistant", content: "", status: "streaming" })
      tag = yield* expectChanged(url, tag)
      // The chat path's checkpoint: only the message row changes, the project row does not.
      yield* app.sql`UPDATE messages SET content = 'Sure', updated_at = NOW() WHERE status = 'streaming'`
      tag = yield* expectChanged(url, tag)
      yield* app.sql`UPDATE messages SET content = 'Sure, here it is', status = 'complete', stop_reason = 'end_turn' WHERE status = 'streaming'`
      tag = yield* expectChanged(url, tag)
      expect((yield* sendJson("PATCH", url, { title: "To-do" })).status).toBe(200)
      tag = yield* expectChanged(url, tag)
      expect((yield* get(url, { "if-none-match": tag })).status).toBe(304)
      // Another project's tag is another tag, and does not match this one.
      const other = yield* newProject(app, "Chat")
      expect((yield* get(`${app.url}/api/projects/${other.id}`, { "if-none-match": tag })).status).toBe(200)
    }))

  it.scopedLive("If-None-Match is compared weakly, as a list, with *; anything else gets the body", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      const project = yield* newProject(app)
      for (const url of [`${app.url}/api/projects`, `${app.url}/api/projects/${project.id}`]) {
        const tag = yield* currentTag(url)
        for (const header of [`W/${tag}`, `"0123", ${tag}`, `${tag.slice(1, -1)}`, "*"]) {
          const answer = yield* get(url, { "if-none-match": header })
          expect({ header, status: answer.status, body: answer.text }).toEqual({ header, status: 304, body: "" })
        }
        for (const header of ["\"nope\"", "", `"${"0".repeat(32)}"`, "W/\"x\", \"y\""]) {
          const answer = yield* get(url, { "if-none-match": header })
          expect({ header, status: answer.status }).toEqual({ header, status: 200 })
          expect(answer.headers.get("etag")).toBe(tag)
        }
        // A page is another representation: its tag differs from the full read's.
        const paged = yield* get(`${url}?${url.endsWith("projects") ? "limit" : "messagesLimit"}=5`, { "if-none-match": tag })
        expect(paged.status).toBe(200)
        expect(etagOf(paged)).not.toBe(tag)
      }
    }))

  it.scopedLive("answering 304 does not build the body (PostgreSQL never executes that part of the plan)", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      const project = yield* newProject(app)
      yield* insertMessage(app, project.id, { role: "user", content: "hi", status: "complete" })
      const explain = (statement: Statement.Statement<unknown>) => {
        const [text, params] = statement.compile()
        return app.sql.unsafe<{ "QUERY PLAN": string }>(`EXPLAIN (ANALYZE, COSTS OFF) ${text}`, params).pipe(
          Effect.map((rows) => rows.map((row) => row["QUERY PLAN"]).join("\n")),
          Effect.orDie
        )
      }
      const page = { limit: null, cursor: null }
      const none = { any: false, tags: [] }
      const [listRow] = yield* listQuery(app.sql, page, none).pipe(Effect.orDie)
      const [projectRow] = yield* projectQuery(app.sql, project.id, page, none).pipe(Effect.orDie)
      expect(listRow?.items).toMatch(/^\[\{"id"/)
      expect(projectRow?.head).toMatch(/^\{"id"/)
      // Built when the client holds no tag …
      expect(yield* explain(listQuery(app.sql, page, none))).not.toMatch(/never executed/)
      // … and skipped when it holds the current one (the statement returns the tag alone).
      const matchingList = { any: false, tags: [listRow!.etag] }
      expect(yield* explain(listQuery(app.sql, page, matchingList))).toMatch(/never executed/)
      expect((yield* listQuery(app.sql, page, matchingList).pipe(Effect.orDie))[0]?.items).toBeNull()
      const matchingProject = { any: false, tags: [projectRow!.etag] }
      expect(yield* explain(projectQuery(app.sql, project.id, page, matchingProject))).toMatch(/never executed/)
      expect((yield* projectQuery(app.sql, project.id, page, matchingProject).pipe(Effect.orDie))[0]?.head).toBeNull()
    }))
})
