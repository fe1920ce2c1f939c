/**
 * Additive pagination of the REST reads (issue 13): `GET /api/projects?limit=&cursor=` and
 * `GET /api/projects/:id?messagesLimit=&before=`, opaque cursors, VALIDATION_ERROR for
 * anything the service did not issue, and the PRD's bodies unchanged without parameters —
 * also in the OpenAPI document, which may only have grown.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import { startApp } from "./support/BoundedApp.js"
import { newProject } from "./support/ChatApp.js"
import { get } from "./support/Http.js"
import type { TestApp } from "./support/TestApp.js"
import { expectError } from "./support/Wire.js"

interface Page {
  readonly projects: ReadonlyArray<{ readonly id: string; readonly title: string }>
  readonly nextCursor?: string | null
}

interface MessagesPage {
  readonly messages: ReadonlyArray<{ readonly id: string; readonly content: string }>
  readonly nextBefore?: string | null
}

const getJson = <A>(url: string) =>
  Effect.gen(function* () {
    const answer = yield* get(url)
    expect({ url, status: answer.status }).toEqual({ url, status: 200 })
    return answer.json as A
  })

/** Every page from the first, following `nextCursor` until it is null. */
const allPages = (app: TestApp, limit: number) =>
  Effect.gen(function* () {
    const pages: Array<Page> = []
    let url = `${app.url}/api/projects?limit=${limit}`
    for (;;) {
      const page = yield* getJson<Page>(url)
      expect(Object.keys(page)).toEqual(["projects", "nextCursor"])
      pages.push(page)
      if (page.nextCursor === null || page.nextCursor === undefined) return pages
      expect(pages.length).toBeLessThan(100)
      url = `${app.url}/api/projects?limit=${limit}&cursor=${page.nextCursor}`
    }
  })

const seedProjects = (app: TestApp, count: number) =>
  app.sql`INSERT INTO projects (title, title_source) SELECT 'Project ' || g, 'user' FROM generate_series(1, ${count}::int) g`.pipe(
    Effect.orDie
  )

const seedMessages = (app: TestApp, projectId: string, count: number) =>
  app.sql`INSERT INTO messages (project_id, role, content)
          SELECT ${projectId}, CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END, 'message ' || g
          FROM generate_series(1, ${count}::int) g ORDER BY g`.pipe(Effect.orDie)

describe("GET /api/projects?limit=&cursor=", () => {
  it.scopedLive("pages through every project once, in the unpaginated order: partial, exact and single pages", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      // Empty: one page, no next.
      expect(yield* getJson(`${app.url}/api/projects?limit=3`)).toEqual({ projects: [], nextCursor: null })
      yield* seedProjects(app, 7)
      // Ties on updatedAt (one statement, one NOW()) for four of them: the id breaks the tie.
      yield* app.sql`UPDATE projects SET updated_at = NOW() - interval '1 hour' WHERE title IN ('Project 2', 'Project 3', 'Project 4', 'Project 5')`
      const full = yield* getJson<Page>(`${app.url}/api/projects`)
      expect(Object.keys(full)).toEqual(["projects"])
      const order = full.projects.map((p) => p.id)
      expect(order).toHaveLength(7)
      for (const limit of [1, 2, 3, 7, 8, 500]) {
        const pages = yield* allPages(app, limit)
        expect({ limit, ids: pages.flatMap((page) => page.projects.map((p) => p.id)) }).toEqual({ limit, ids: order })
        expect(pages.map((page) => page.projects.length)).toEqual(
          Array.from({ length: Math.max(1, Math.ceil(7 / limit)) }, (_, i) => Math.min(limit, 7 - i * limit))
        )
        // The last page says so; every other page has a next cursor.
        expect(pages.map((page) => page.nextCursor === null)).toEqual(pages.map((_, i) => i === pages.length - 1))
      }
      // An exact page (7 of 7) has no next page.
      expect((yield* getJson<Page>(`${app.url}/api/projects?limit=7`)).nextCursor).toBeNull()
    }))

  it.scopedLive("a cursor without a limit pages by 50; a project updated meanwhile moves to the front, the others stay in order", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      yield* seedProjects(app, 60)
      const first = yield* getJson<Page>(`${app.url}/api/projects?limit=10`)
      const rest = yield* getJson<Page>(`${app.url}/api/projects?cursor=${first.nextCursor}`)
      expect(rest.projects).toHaveLength(50)
      expect(rest.nextCursor).toBeNull()
      const renamed = first.projects[0]!
      yield* app.sql`UPDATE projects SET title = 'Moved', updated_at = NOW() + interval '1 minute' WHERE id = ${renamed.id}`
      const again = yield* getJson<Page>(`${app.url}/api/projects?limit=10&cursor=${first.nextCursor}`)
      expect(again.projects.map((p) => p.id)).toEqual(rest.projects.slice(0, 10).map((p) => p.id))
    }))

  it.scopedLive("refuses limits out of bounds and cursors it did not issue with 400 VALIDATION_ERROR", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      yield* seedProjects(app, 2)
      for (const limit of ["0", "501", "-1", "1.5", "1e2", "abc", "", " 5", "99999999999"]) {
        expectError(yield* get(`${app.url}/api/projects?limit=${encodeURIComponent(limit)}`), 400, "VALIDATION_ERROR")
      }
      for (const limit of ["1", "500"]) expect((yield* get(`${app.url}/api/projects?limit=${limit}`)).status).toBe(200)
      const base64 = (value: string) => Buffer.from(value, "utf8").toString("base64url")
      const cursors = [
        "abc",
        "!!!",
        base64("not json"),
        base64("{}"),
        base64(JSON.stringify({ u: "2026-01-01T00:00:00.000000Z", i: "not-a-uuid" })),
        base64(JSON.stringify({ u: "2026-13-01T00:00:00.000000Z", i: "00000000-0000-4000-8000-000000000000" })),
        base64(JSON.stringify({ u: "2026-02-30T00:00:00.000000Z", i: "00000000-0000-4000-8000-000000000000" })),
        base64(JSON.stringify({ u: "yesterday", i: "00000000-0000-4000-8000-000000000000" })),
        base64(JSON.stringify({ o: 5 })),
        "x".repeat(2000)
      ]
      for (const cursor of cursors) {
        const answer = yield* get(`${app.url}/api/projects?limit=1&cursor=${encodeURIComponent(cursor)}`)
        expectError(answer, 400, "VALIDATION_ERROR")
      }
      // A well-formed cursor for a place past every project is an empty last page, not an error.
      const past = base64(JSON.stringify({ u: "1970-01-01T00:00:00.000000Z", i: "00000000-0000-4000-8000-000000000000" }))
      expect(yield* getJson(`${app.url}/api/projects?limit=1&cursor=${past}`)).toEqual({ projects: [], nextCursor: null })
    }))
})

describe("GET /api/projects/:id?messagesLimit=&before=", () => {
  it.scopedLive("pages backwards from the newest messages, each page oldest first", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      const empty = yield* newProject(app)
      const emptyPage = yield* getJson<MessagesPage>(`${app.url}/api/projects/${empty.id}?messagesLimit=2`)
      expect({ messages: emptyPage.messages, nextBefore: emptyPage.nextBefore }).toEqual({ messages: [], nextBefore: null })

      const project = yield* newProject(app)
      yield* seedMessages(app, project.id, 5)
      const full = yield* getJson<MessagesPage>(`${app.url}/api/projects/${project.id}`)
      expect(Object.keys(full)).toEqual(["id", "title", "createdAt", "updatedAt", "messages", "usage"])
      expect(full.messages.map((m) => m.content)).toEqual(["message 1", "message 2", "message 3", "message 4", "message 5"])

      const contents = (page: MessagesPage) => page.messages.map((m) => m.content)
      const newest = yield* getJson<MessagesPage>(`${app.url}/api/projects/${project.id}?messagesLimit=2`)
      expect(Object.keys(newest)).toEqual(["id", "title", "createdAt", "updatedAt", "messages", "usage", "nextBefore"])
      expect(contents(newest)).toEqual(["message 4", "message 5"])
      const middle = yield* getJson<MessagesPage>(`${app.url}/api/projects/${project.id}?messagesLimit=2&before=${newest.nextBefore}`)
      expect(contents(middle)).toEqual(["message 2", "message 3"])
      const oldest = yield* getJson<MessagesPage>(`${app.url}/api/projects/${project.id}?messagesLimit=2&before=${middle.nextBefore}`)
      expect(contents(oldest)).toEqual(["message 1"])
      expect(oldest.nextBefore).toBeNull()
      // Exact page: all five in one page of five has nothing before it.
      const exact = yield* getJson<MessagesPage>(`${app.url}/api/projects/${project.id}?messagesLimit=5`)
      expect({ messages: contents(exact), nextBefore: exact.nextBefore }).toEqual({ messages: contents(full), nextBefore: null })
      // `before` alone pages by 50.
      const rest = yield* getJson<MessagesPage>(`${app.url}/api/projects/${project.id}?before=${newest.nextBefore}`)
      expect({ messages: contents(rest), nextBefore: rest.nextBefore }).toEqual({ messages: contents(full).slice(0, 3), nextBefore: null })
    }))

  it.scopedLive("refuses bad limits and cursors with 400, and an absent project with 404, whatever the parameters", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      const project = yield* newProject(app)
      for (const query of ["messagesLimit=0", "messagesLimit=501", "messagesLimit=x", "before=abc", `before=${Buffer.from("{\"o\":-1}").toString("base64url")}`, `before=${Buffer.from("{\"o\":\"1\"}").toString("base64url")}`]) {
        expectError(yield* get(`${app.url}/api/projects/${project.id}?${query}`), 400, "VALIDATION_ERROR")
      }
      expectError(yield* get(`${app.url}/api/projects/00000000-0000-4000-8000-000000000000?messagesLimit=3`), 404, "PROJECT_NOT_FOUND")
    }))
})

// ---------------------------------------------------------------------------------------------

interface OpenApiDocument {
  readonly paths: Record<string, Record<string, { parameters?: ReadonlyArray<{ name: string; in: string; required: boolean }>; requestBody?: unknown; responses: Record<string, unknown> }>>
  readonly components: { readonly schemas: Record<string, { properties?: Record<string, unknown>; required?: ReadonlyArray<string> }> }
}

interface Before {
  readonly schemas: Record<string, { properties?: Record<string, unknown>; required?: ReadonlyArray<string> }>
  readonly operations: Record<string, { parameters: ReadonlyArray<unknown>; requestBody: unknown; responses: Record<string, unknown> }>
}

describe("the OpenAPI document", () => {
  it.scopedLive("keeps the PRD endpoints' shapes (only optional fields and parameters added) and documents paging and ETags", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      const document = (yield* get(`${app.url}/openapi.json`)).json as OpenApiDocument
      const before = JSON.parse(Fs.readFileSync(new URL("./fixtures/openapi-prd-shapes.json", import.meta.url), "utf8")) as Before
      for (const [name, schema] of Object.entries(before.schemas)) {
        const now = document.components.schemas[name]
        expect({ name, required: now?.required }).toEqual({ name, required: schema.required })
        const { properties: oldProperties, ...rest } = schema
        const { properties: nowProperties, ...nowRest } = now ?? {}
        expect({ name, rest: nowRest }).toEqual({ name, rest })
        for (const [property, definition] of Object.entries(oldProperties ?? {})) {
          expect({ name, property, definition: nowProperties?.[property] }).toEqual({ name, property, definition })
        }
      }
      for (const [key, operation] of Object.entries(before.operations)) {
        const [method = "", path = ""] = key.split(" ")
        const now = document.paths[path]?.[method.toLowerCase()]
        expect(now, key).toBeDefined()
        expect({ key, requestBody: now?.requestBody ?? null }).toEqual({ key, requestBody: operation.requestBody })
        for (const [status, response] of Object.entries(operation.responses)) {
          expect({ key, status, response: now?.responses[status] }).toEqual({ key, status, response })
        }
        for (const parameter of operation.parameters) expect(now?.parameters).toContainEqual(parameter)
        // Anything added is optional.
        const added = (now?.parameters ?? []).filter((p) => !operation.parameters.some((old) => JSON.stringify(old) === JSON.stringify(p)))
        expect(added.filter((p) => p.required)).toEqual([])
      }
      const parameterNames = (path: string) => (document.paths[path]?.["get"]?.parameters ?? []).map((p) => `${p.in}:${p.name}`)
      expect(parameterNames("/api/projects")).toEqual(expect.arrayContaining(["query:limit", "query:cursor", "header:if-none-match"]))
      expect(parameterNames("/api/projects/{id}")).toEqual(
        expect.arrayContaining(["query:messagesLimit", "query:before", "header:if-none-match"])
      )
      expect(Object.keys(document.paths["/api/projects"]?.["get"]?.responses ?? {})).toContain("304")
      expect(Object.keys(document.paths["/api/projects/{id}"]?.["get"]?.responses ?? {})).toContain("304")
      expect(Object.keys(document.components.schemas["ProjectList"]?.properties ?? {})).toContain("nextCursor")
      expect(Object.keys(document.components.schemas["ProjectWithMessages"]?.properties ?? {})).toContain("nextBefore")
    }))
})
