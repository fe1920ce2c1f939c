/**
 * The REST reads answered straight from `node:http` (`src/http/FastReads.ts`, issue 13):
 * they must take exactly the plain, valid reads, hand everything else to the platform
 * (which owns the errors), and answer what the platform would have answered, byte for byte
 * and header for header. And the bodies they keep (`ReadCache`) must never outlive a change.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, HashMap, Layer, Logger, Option } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { AppConfig } from "../src/Config.js"
import { DatabaseLive } from "../src/db/Database.js"
import { AccessToken } from "../src/http/Auth.js"
import { makeFastReads } from "../src/http/FastReads.js"
import { Lifecycle } from "../src/Lifecycle.js"
import { Projects } from "../src/projects/Projects.js"
import { ReadCache } from "../src/projects/ReadCache.js"
import { startApp } from "./support/BoundedApp.js"
import { newProject } from "./support/ChatApp.js"
import { rawRequest, type RawAnswer } from "./support/Http.js"
import type { TestApp } from "./support/TestApp.js"
import { freshDatabase } from "./support/TestDatabase.js"

const PLATFORM = 599
const DECLINED = 598

interface LoggedRequest {
  readonly message: string
  readonly annotations: Record<string, unknown>
}

/**
 * `makeFastReads` on a plain `node:http` server: a request it declines is answered 598, one
 * it hands back to the platform (after looking at the database) 599.
 */
const startFastReads = (env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const databaseUrl = yield* freshDatabase
    const logged: Array<LoggedRequest> = []
    const collect = Logger.make(({ message, annotations }) => {
      logged.push({ message: String(message), annotations: Object.fromEntries(HashMap.toEntries(annotations)) })
    })
    const config = ConfigProvider.fromMap(new Map(Object.entries({ DATABASE_URL: databaseUrl, LOG_LEVEL: "info", ...env })))
    const context = yield* Layer.build(
      Layer.mergeAll(Projects.Default, AccessToken.Default, Lifecycle.Default).pipe(
        Layer.provideMerge(DatabaseLive),
        Layer.provideMerge(AppConfig.layer),
        Layer.provide(Logger.replace(Logger.defaultLogger, collect)),
        Layer.provide(Layer.setConfigProvider(config))
      )
    )
    const preempt = yield* makeFastReads.pipe(Effect.provide(context))
    const server = Http.createServer((request, response) => {
      const took = Option.isSome(preempt) && preempt.value(request, response, () => {
        response.writeHead(PLATFORM)
        response.end()
      })
      if (!took) {
        response.writeHead(DECLINED)
        response.end()
      }
    })
    yield* Effect.acquireRelease(
      Effect.async<void>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.void))
      }),
      () => Effect.sync(() => server.close())
    )
    const projects = Context.get(context, Projects)
    const sql = Context.get(context, SqlClient.SqlClient)
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    return { url, preempt, projects, sql, logged }
  })

describe("FastReads: which requests it takes", () => {
  it.scopedLive("answers plain, valid reads itself, with the access-log line of the platform's", () =>
    Effect.gen(function* () {
      const { url, projects, logged } = yield* startFastReads()
      const project = yield* projects.create("Fast")
      const list = yield* rawRequest(`${url}/api/projects`, { headers: { "x-request-id": "list-1" } })
      expect(list.status).toBe(200)
      expect(JSON.parse(list.text)).toMatchObject({ projects: [{ id: project.id, title: "Fast" }] })
      expect(list.headers["x-request-id"]).toBe("list-1")
      const detail = yield* rawRequest(`${url}/api/projects/${project.id}`)
      expect(detail.status).toBe(200)
      expect(JSON.parse(detail.text)).toMatchObject({ id: project.id, messages: [] })
      expect(detail.headers["content-type"]).toBe("application/json")
      const paged = yield* rawRequest(`${url}/api/projects/${project.id}?messagesLimit=1`)
      expect(JSON.parse(paged.text)).toMatchObject({ id: project.id, messages: [], nextBefore: null })
      const pagedList = yield* rawRequest(`${url}/api/projects?limit=1`)
      expect(JSON.parse(pagedList.text)).toMatchObject({ projects: [{ id: project.id }], nextCursor: null })
      const etag = String(detail.headers["etag"])
      const notModified = yield* rawRequest(`${url}/api/projects/${project.id}`, { headers: { "if-none-match": etag } })
      expect(notModified.status).toBe(304)
      expect(notModified.text).toBe("")
      const lines = logged.filter((line) => line.message === "http request")
      expect(lines.map((line) => line.annotations["status"])).toEqual([200, 200, 200, 200, 304])
      expect(lines[0]?.annotations).toMatchObject({ requestId: "list-1", method: "GET", path: "/api/projects" })
      expect(lines[1]?.annotations).toMatchObject({ path: `/api/projects/${project.id}` })
      expect(typeof lines[1]?.annotations["durationMs"]).toBe("number")
    }))

  it.scopedLive("declines other routes, methods and parameters, and hands back an absent project", () =>
    Effect.gen(function* () {
      const { url, projects } = yield* startFastReads()
      const project = yield* projects.create("Fast")
      const status = (path: string, method = "GET") => Effect.map(rawRequest(`${url}${path}`, { method }), (answer) => answer.status)
      const declined = [
        "/health",
        "/api/projects/not-a-uuid",
        `/api/projects/${project.id}/messages`,
        "/api/projects?limit=0",
        "/api/projects?limit=1&limit=2",
        "/api/projects?cursor=not-ours",
        "/api/projects?unknown=1",
        `/api/projects/${project.id}?before=not-ours`,
        `/api/projects/${project.id}?limit=1`,
        "/api/projects?token=secret"
      ]
      for (const path of declined) expect({ path, status: yield* status(path) }).toEqual({ path, status: DECLINED })
      expect(yield* status("/api/projects?")).toBe(200)
      expect(yield* status("/api/projects", "POST")).toBe(DECLINED)
      expect(yield* status(`/api/projects/${project.id}`, "DELETE")).toBe(DECLINED)
      expect(yield* status("/api/projects/00000000-0000-4000-8000-000000000000")).toBe(PLATFORM)
    }))

  it.scopedLive("with AUTH_TOKEN set, takes only reads that carry it; the platform answers the others", () =>
    Effect.gen(function* () {
      const { url, projects } = yield* startFastReads({ AUTH_TOKEN: "s3cret" })
      const project = yield* projects.create("Fast")
      const status = (headers: Record<string, string>) =>
        Effect.map(rawRequest(`${url}/api/projects/${project.id}`, { headers }), (answer) => answer.status)
      expect(yield* status({ authorization: "Bearer s3cret" })).toBe(200)
      expect(yield* status({})).toBe(PLATFORM)
      expect(yield* status({ authorization: "Bearer wrong" })).toBe(PLATFORM)
    }))

  it.scopedLive("is off when tracing is on: every request gets the platform's server span", () =>
    Effect.gen(function* () {
      const { preempt } = yield* startFastReads({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" })
      expect(Option.isNone(preempt)).toBe(true)
    }))
})

describe("ReadCache: the last body of each read, served only while PostgreSQL says it is current", () => {
  it("keeps the most recently used bodies within its byte budget, and no body larger than a quarter of it", () => {
    const cache = new ReadCache(400)
    const body = (bytes: number) => Buffer.alloc(bytes, 120)
    cache.set("a", { etag: "1", body: body(100) })
    cache.set("b", { etag: "2", body: body(100) })
    cache.set("c", { etag: "3", body: body(100) })
    expect(cache.get("a")?.etag).toBe("1")
    cache.set("d", { etag: "4", body: body(100) })
    cache.set("e", { etag: "5", body: body(100) })
    expect(["a", "b", "c", "d", "e"].map((key) => cache.get(key)?.etag)).toEqual(["1", undefined, "3", "4", "5"])
    expect(cache.size).toBe(400)
    cache.set("a", { etag: "6", body: body(101) })
    expect(cache.get("a")).toBeUndefined()
    expect(cache.size).toBe(300)
    expect(new ReadCache(0).size).toBe(0)
  })

  it.scopedLive("serves the stored body while nothing changed, and never once another connection changed the rows", () =>
    Effect.gen(function* () {
      const { projects, sql } = yield* startFastReads()
      const project = yield* projects.create("Cached")
      const everything = { limit: null, cursor: null }
      const noTags = { any: false, tags: [] }
      const first = yield* projects.getJson(project.id, everything, noTags)
      const again = yield* projects.getJson(project.id, everything, noTags)
      // The very same bytes: the statement sent the tag alone.
      expect(again.body).toBe(first.body)
      // Written as another instance would: past this instance's code, straight to the table.
      yield* sql`INSERT INTO messages (project_id, role, content, status) VALUES (${project.id}, 'user', 'new here', 'complete')`
      const changed = yield* projects.getJson(project.id, everything, noTags)
      expect(changed.etag).not.toBe(first.etag)
      expect(JSON.parse(String(changed.body))).toMatchObject({ messages: [{ content: "new here" }] })
      const list = yield* projects.listJson(everything, noTags)
      yield* sql`UPDATE projects SET title = 'Renamed elsewhere' WHERE id = ${project.id}`
      const relisted = yield* projects.listJson(everything, noTags)
      expect(relisted.body).not.toBe(list.body)
      expect(JSON.parse(String(relisted.body))).toMatchObject({ projects: [{ title: "Renamed elsewhere" }] })
      // The client's own tag still wins: 304, not the cached body.
      const current = yield* projects.getJson(project.id, everything, noTags)
      const notModified = yield* projects.getJson(project.id, everything, { any: false, tags: [current.etag] })
      expect(notModified.body).toBeNull()
    }))

  it.scopedLive("REST_CACHE_MB=0 keeps nothing: every read builds its body", () =>
    Effect.gen(function* () {
      const { projects } = yield* startFastReads({ REST_CACHE_MB: "0" })
      const project = yield* projects.create("Uncached")
      const everything = { limit: null, cursor: null }
      const first = yield* projects.getJson(project.id, everything, { any: false, tags: [] })
      const again = yield* projects.getJson(project.id, everything, { any: false, tags: [] })
      expect(again.body).not.toBe(first.body)
      expect(again.body).toEqual(first.body)
    }))
})

/** What must be the same whichever path answered: all but the date and a generated request id. */
const comparable = (answer: RawAnswer) => {
  const { date: _date, "x-request-id": requestId, ...headers } = answer.headers
  return { status: answer.status, headers, text: answer.text, requestIdGiven: requestId === "given-id" }
}

/** An unknown parameter, which the platform ignores, sends the same read down the platform's path. */
const viaPlatform = (path: string) => `${path}${path.includes("?") ? "&" : "?"}platform=1`

const expectSameAnswers = (app: TestApp, path: string, headers: Record<string, string>) =>
  Effect.gen(function* () {
    const fast = yield* rawRequest(`${app.url}${path}`, { headers })
    const platform = yield* rawRequest(`${app.url}${viaPlatform(path)}`, { headers })
    expect({ path, sent: headers, ...comparable(fast) }).toEqual({ path, sent: headers, ...comparable(platform) })
    return fast
  })

describe("FastReads: the same answers as the platform's", () => {
  it.scopedLive("bodies, tags, 304s, CORS headers and request ids, paginated or not", () =>
    Effect.gen(function* () {
      const app = yield* startApp({ CORS_ORIGINS: "http://a.example,http://b.example" })
      const first = yield* newProject(app, "First")
      yield* newProject(app, "Second")
      yield* app.sql`
        INSERT INTO messages (project_id, role, content, status)
        SELECT ${first.id}, CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END, 'message ' || g || ' "quoted" ✓', 'complete'
        FROM generate_series(1, 5) g`
      const detail = yield* expectSameAnswers(app, `/api/projects/${first.id}`, {})
      expect((JSON.parse(detail.text) as { messages: Array<unknown> }).messages).toHaveLength(5)
      const page = yield* expectSameAnswers(app, `/api/projects/${first.id}?messagesLimit=2`, { "x-request-id": "given-id" })
      const { nextBefore } = JSON.parse(page.text) as { nextBefore: string }
      yield* expectSameAnswers(app, `/api/projects/${first.id}?messagesLimit=2&before=${nextBefore}`, {})
      const list = yield* expectSameAnswers(app, "/api/projects?limit=1", { origin: "http://b.example" })
      expect(list.headers["access-control-allow-origin"]).toBe("http://b.example")
      const { nextCursor } = JSON.parse(list.text) as { nextCursor: string }
      yield* expectSameAnswers(app, `/api/projects?limit=1&cursor=${nextCursor}`, { origin: "http://elsewhere.example" })
      const all = yield* expectSameAnswers(app, "/api/projects", { origin: "http://a.example" })
      const notModified = yield* expectSameAnswers(app, "/api/projects", { "if-none-match": String(all.headers["etag"]) })
      expect(notModified.status).toBe(304)
      yield* expectSameAnswers(app, `/api/projects/${first.id}`, { "if-none-match": `W/${String(detail.headers["etag"])}, "other"` })
    }))
})
