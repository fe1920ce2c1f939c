/**
 * The service as a real process, for what only a process shows: its stdout is JSON log
 * lines with request fields and no secrets, SIGTERM drains an in-flight request and exits
 * 0 with new connections refused, the embedded PostgreSQL default starts and leaves no
 * process behind, and a production start without its secrets fails fast with one line.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { randomBytes } from "node:crypto"
import { freePort } from "./support/FreePort.js"
import {
  awaitExit,
  awaitHealthy,
  awaitLine,
  connectionRefused,
  PROJECT_ROOT,
  type ServiceProcess,
  spawnService
} from "./support/ServiceProcess.js"
import { fetchAnswer, LIVENESS_TIMEOUT_MS } from "./support/Http.js"
import { TcpProxyScoped, targetOf } from "./support/TcpProxy.js"
import { freshDatabase } from "./support/TestDatabase.js"
import { decodeExact, ISO_TIMESTAMP, UUID, WireProject, WireProjectList } from "./support/Wire.js"

const API_KEY = "sk-ant-test-SECRET-abc123"
const INVENTED_PASSWORD = "db-secret-pass-123"

/**
 * `url` with a password: the test server's own when it has one (the embedded server checks
 * it), otherwise an invented one (the machine's server trusts local connections).
 */
const withPassword = (url: string) => {
  const parsed = new URL(url)
  if (parsed.password === "") parsed.password = INVENTED_PASSWORD
  return { url: parsed.toString(), password: decodeURIComponent(parsed.password) }
}

/** A fresh database URL carrying a password, and that password. */
const databaseWithPassword = Effect.map(freshDatabase, withPassword)

const LEVELS = ["trace", "debug", "info", "warning", "warn", "error", "fatal"] as const

const LogLine = Schema.Struct(
  {
    timestamp: Schema.String.pipe(Schema.pattern(ISO_TIMESTAMP)),
    level: Schema.Literal(...LEVELS),
    message: Schema.String
  },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)
type LogLine = typeof LogLine.Type

/** Every stdout line as a JSON log object; fails the test on any line that is not one. */
const logLinesOf = (service: ServiceProcess): ReadonlyArray<LogLine> =>
  service.lines().map((line) => {
    const parsed = Schema.decodeUnknownEither(Schema.parseJson(LogLine))(line)
    if (parsed._tag === "Left") throw new Error(`stdout line is not a JSON log object: ${line}\n${parsed.left.message}`)
    return parsed.right
  })

const call = (service: ServiceProcess, path: string, init: RequestInit = {}) =>
  Effect.promise(() => fetchAnswer(`${service.url}${path}`, init))

const jsonBody = (method: string, body: string): RequestInit => ({
  method,
  headers: { "content-type": "application/json" },
  body
})

/** Live postmasters (or any process) whose command line names `dir`, from /proc. */
const processesUsing = (dir: string): ReadonlyArray<string> =>
  Fs.readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .flatMap((pid) => {
      try {
        const argv = Fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ")
        return argv.includes(dir) ? [`${pid}: ${argv}`] : []
      } catch {
        return [] // Exited while we looked.
      }
    })

const dataDirs: Array<string> = []
afterAll(() => {
  for (const dir of dataDirs) Fs.rmSync(dir, { recursive: true, force: true })
})

describe("the service process", () => {
  it.scopedLive("logs one JSON object per line, with the request fields on every request line, and never a secret", () =>
    Effect.gen(function* () {
      const database = yield* databaseWithPassword
      const service = yield* spawnService({ DATABASE_URL: database.url, CLAUDE_API_KEY: API_KEY, LOG_LEVEL: "debug" })
      yield* awaitHealthy(service)

      // Every endpoint, successes and errors alike.
      const created = yield* call(service, "/api/projects", {
        ...jsonBody("POST", JSON.stringify({ title: "Logged" })),
        headers: { "content-type": "application/json", "x-request-id": "trace-create-1" }
      })
      expect(created.status).toBe(201)
      const project = decodeExact(WireProject, created.json)
      expect((yield* call(service, "/api/projects", { headers: { "x-request-id": "trace-list-1" } })).status).toBe(200)
      expect((yield* call(service, `/api/projects/${project.id}`)).status).toBe(200)
      expect((yield* call(service, `/api/projects/${project.id}`, jsonBody("PATCH", "{\"title\":\"Renamed\"}"))).status).toBe(200)
      expect((yield* call(service, "/api/projects/not-a-uuid")).status).toBe(400)
      expect((yield* call(service, "/api/projects", jsonBody("POST", "{\"title\":"))).status).toBe(400)
      expect((yield* call(service, "/api/nowhere", { headers: { "x-request-id": "trace-404-1" } })).status).toBe(404)
      expect((yield* call(service, `/api/projects/${project.id}`, { method: "DELETE" })).status).toBe(204)
      expect((yield* call(service, `/api/projects/${project.id}`, { method: "DELETE" })).status).toBe(404)
      expect((yield* call(service, "/openapi.json")).status).toBe(200)
      expect((yield* call(service, "/health")).status).toBe(200)

      service.signal("SIGTERM")
      expect(yield* awaitExit(service)).toEqual({ code: 0, signal: null })

      const lines = logLinesOf(service)
      const requests = lines.filter((line) => line.message === "http request")
      // One line per request above, plus the readiness polls.
      expect(requests.length).toBeGreaterThanOrEqual(11)
      for (const line of requests) {
        expect(line).toMatchObject({
          requestId: expect.any(String),
          method: expect.stringMatching(/^[A-Z]+$/),
          path: expect.stringMatching(/^\//),
          status: expect.any(Number),
          durationMs: expect.any(Number)
        })
        expect(line["durationMs"]).toBeGreaterThanOrEqual(0)
      }
      expect(requests.find((line) => line.requestId === "trace-create-1")).toMatchObject({
        method: "POST",
        path: "/api/projects",
        status: 201
      })
      expect(requests.find((line) => line.requestId === "trace-list-1")).toMatchObject({ method: "GET", path: "/api/projects", status: 200 })
      expect(requests.find((line) => line.requestId === "trace-404-1")).toMatchObject({ path: "/api/nowhere", status: 404 })
      expect(requests.find((line) => line.path === "/api/projects/not-a-uuid")).toMatchObject({
        status: 400,
        requestId: expect.stringMatching(UUID)
      })

      const everything = service.stdout() + service.stderr()
      expect(everything).not.toContain(API_KEY)
      expect(everything).not.toContain(database.password)
    }), 90_000)

  it.scopedLive("never prints a secret when startup fails either", () =>
    Effect.gen(function* () {
      const closedPort = yield* Effect.promise(freePort)
      const variants = [
        // Nothing listens there.
        `postgres://app:${INVENTED_PASSWORD}@127.0.0.1:${closedPort}/gochat`,
        // Not a valid URL (the port is not a number).
        `postgres://app:${INVENTED_PASSWORD}@127.0.0.1:notaport/gochat`
      ]
      const services = yield* Effect.forEach(variants, (url) =>
        spawnService({ DATABASE_URL: url, CLAUDE_API_KEY: API_KEY, LOG_LEVEL: "debug" })
      )
      for (const service of services) {
        const exit = yield* awaitExit(service)
        expect(exit.code).not.toBe(0)
        const lines = logLinesOf(service)
        expect(lines.some((line) => line.level === "error" || line.level === "fatal")).toBe(true)
        const everything = service.stdout() + service.stderr()
        expect(everything).not.toContain(API_KEY)
        expect(everything).not.toContain(INVENTED_PASSWORD)
      }
    }), 90_000)

  it.scopedLive("respects LOG_LEVEL: at error, a healthy run prints no info lines", () =>
    Effect.gen(function* () {
      const database = yield* databaseWithPassword
      const service = yield* spawnService({ DATABASE_URL: database.url, LOG_LEVEL: "error" })
      yield* awaitHealthy(service)
      expect((yield* call(service, "/api/projects")).status).toBe(200)
      expect((yield* call(service, "/api/nowhere")).status).toBe(404)
      service.signal("SIGTERM")
      expect(yield* awaitExit(service)).toEqual({ code: 0, signal: null })
      for (const line of logLinesOf(service)) expect(["error", "fatal"]).toContain(line.level)
    }), 90_000)

  it.scopedLive("on SIGTERM, refuses new connections, finishes the in-flight request, and exits 0", () =>
    Effect.gen(function* () {
      const database = yield* databaseWithPassword
      const proxy = yield* TcpProxyScoped(targetOf(database.url))
      const service = yield* spawnService({ DATABASE_URL: proxy.urlFor(database.url), SHUTDOWN_GRACE_SECONDS: "20" })
      yield* awaitHealthy(service)
      expect((yield* call(service, "/api/projects", jsonBody("POST", "{\"title\":\"Survives shutdown\"}"))).status).toBe(201)

      // From now on PostgreSQL's answers are held until the test releases them: listing projects takes as long as it must.
      proxy.holdReplies()
      const sentBefore = proxy.bytesFromClients()
      const slow = fetch(`${service.url}/api/projects`, { signal: AbortSignal.timeout(LIVENESS_TIMEOUT_MS) }).then(
        async (response) => ({ status: response.status, body: JSON.parse(await response.text()) as unknown })
      )
      // The request is in flight once its query has reached the database.
      yield* Effect.promise(async () => {
        while (proxy.bytesFromClients() === sentBefore) await new Promise((resolve) => setTimeout(resolve, 10))
      }).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("the query never reached the database") }), Effect.orDie)

      service.signal("SIGTERM")
      yield* awaitLine(service, (line) => /shutting down/i.test(line))

      // New connections are refused while the in-flight request is still being served.
      yield* Effect.promise(async () => {
        while (!(await connectionRefused(service.port))) await new Promise((resolve) => setTimeout(resolve, 20))
      }).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("new connections were still accepted") }), Effect.orDie)
      expect(service.hasExited(), "the process waits for the request in flight").toBe(false)
      proxy.releaseReplies()

      const answer = yield* Effect.promise(() => slow)
      expect(answer.status).toBe(200)
      expect(decodeExact(WireProjectList, answer.body).projects.map((p) => p.title)).toEqual(["Survives shutdown"])

      expect(yield* awaitExit(service)).toEqual({ code: 0, signal: null })
      expect(yield* Effect.promise(() => connectionRefused(service.port))).toBe(true)
      const lines = logLinesOf(service)
      expect(lines.some((line) => /shutting down/i.test(line.message))).toBe(true)
      expect(lines.filter((line) => line.level === "error")).toEqual([])
    }), 60_000)

  it.scopedLive("without DATABASE_URL, runs on the embedded PostgreSQL and leaves no postgres process after SIGTERM", () =>
    Effect.gen(function* () {
      const dataDir = Path.join(PROJECT_ROOT, ".data", `process-test-${randomBytes(4).toString("hex")}`)
      dataDirs.push(dataDir)
      const pgPort = yield* Effect.promise(freePort)
      // SIGTERM first if the test leaves it running, so that its PostgreSQL is stopped too.
      const service = yield* spawnService({ DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(pgPort) }, { stop: "terminate" })
      yield* awaitHealthy(service, 90_000)
      expect(processesUsing(dataDir).length).toBeGreaterThan(0)

      const created = yield* call(service, "/api/projects", jsonBody("POST", "{\"title\":\"Embedded\"}"))
      expect(created.status).toBe(201)
      const list = decodeExact(WireProjectList, (yield* call(service, "/api/projects")).json)
      expect(list.projects.map((p) => p.title)).toEqual(["Embedded"])

      service.signal("SIGTERM")
      expect(yield* awaitExit(service)).toEqual({ code: 0, signal: null })
      expect(processesUsing(dataDir)).toEqual([])
      // The server's own output went to debug logs, not raw onto stdout.
      logLinesOf(service)
    }), 120_000)
})
