import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http"
import { AppConfig } from "../Config.js"
import { ProjectId } from "../domain/Ids.js"
import { Lifecycle } from "../Lifecycle.js"
import {
  type JsonRead,
  MessagesCursor,
  PageLimit,
  type PageRequest,
  pageRequest,
  parseIfNoneMatch,
  ProjectsCursor,
  type Validators
} from "../projects/Paging.js"
import { Projects } from "../projects/Projects.js"
import { AccessToken, bearerTokenOf } from "./Auth.js"
import { corsHeadersFor } from "./Cors.js"
import { requestIdOf } from "./RequestMiddleware.js"

/** Takes a request (true) or leaves it to the platform's HTTP stack (false); `fallback` hands it over later. */
export type Preempt = (request: IncomingMessage, response: ServerResponse, fallback: () => void) => boolean

const decodeLimit = Schema.decodeUnknownOption(PageLimit)
const decodeProjectsCursor = Schema.decodeUnknownOption(ProjectsCursor)
const decodeMessagesCursor = Schema.decodeUnknownOption(MessagesCursor)
const decodeProjectId = Schema.decodeUnknownOption(ProjectId)

const PROJECT_PATH = /^\/api\/projects\/([^/]+)$/

/**
 * The page a query string asks for, when it holds nothing but these two parameters, each
 * at most once and valid; undefined otherwise (the platform answers that, with its errors).
 */
const pageOf = <Cursor>(
  query: string,
  limitName: string,
  cursorName: string,
  decodeCursor: (text: string) => Option.Option<Cursor>
): PageRequest<Cursor> | undefined => {
  if (query.length === 0) return pageRequest<Cursor>(undefined, undefined)
  const params = new URLSearchParams(query)
  let limit: number | undefined
  let cursor: Cursor | undefined
  let seen = 0
  for (const [name, value] of params) {
    seen++
    if (name === limitName && limit === undefined) {
      const decoded = decodeLimit(value)
      if (Option.isNone(decoded)) return undefined
      limit = decoded.value
    } else if (name === cursorName && cursor === undefined) {
      const decoded = decodeCursor(value)
      if (Option.isNone(decoded)) return undefined
      cursor = decoded.value
    } else return undefined
  }
  return seen > 0 ? pageRequest(limit, cursor) : undefined
}

type Read = (validators: Validators) => Effect.Effect<JsonRead, unknown>

/**
 * `GET /api/projects` and `GET /api/projects/:id`, answered straight from `node:http` when
 * the request is a plain, valid read: most of a read's CPU was the platform's HTTP stack
 * (router, middleware, schema decoding of the request, pre-response handlers: about 600 µs
 * against 50 µs of ours). The answer is the one the platform would give — the same
 * `Projects` read, body, `ETag`, CORS headers, request id, access-log line and drain
 * tracking — and `test/fastReads.test.ts` compares the two.
 *
 * Everything else goes to the platform, which owns the errors: other routes and methods,
 * unknown or repeated or invalid parameters, a missing or wrong token, an absent project
 * and a failed query (handed over after the fact: a GET has no body to have consumed). With
 * tracing on, every request takes the platform's path, which gives it its server span.
 */
export const makeFastReads = Effect.gen(function* () {
  const config = yield* AppConfig
  const projects = yield* Projects
  const accessToken = yield* AccessToken
  const lifecycle = yield* Lifecycle
  const runFork = Runtime.runFork(yield* Effect.runtime<never>())
  const corsHeaders = corsHeadersFor(config.corsOrigins)

  const readOf = (path: string, query: string): Read | undefined => {
    if (path === "/api/projects") {
      const page = pageOf(query, "limit", "cursor", decodeProjectsCursor)
      return page === undefined ? undefined : (validators) => projects.listJson(page, validators)
    }
    const matched = PROJECT_PATH.exec(path)
    if (matched === null) return undefined
    const id = decodeProjectId(matched[1])
    const page = pageOf(query, "messagesLimit", "before", decodeMessagesCursor)
    return Option.isNone(id) || page === undefined ? undefined : (validators) => projects.getJson(id.value, page, validators)
  }

  const serve = (request: IncomingMessage, response: ServerResponse, path: string, read: Read, fallback: () => void) => {
    const startedAt = performance.now()
    const givenId = request.headers["x-request-id"]
    const requestId = requestIdOf(typeof givenId === "string" ? givenId : undefined)
    return Effect.gen(function* () {
      if (Either.isLeft(yield* Effect.either(accessToken.verify(bearerTokenOf(request.headers.authorization))))) {
        return fallback()
      }
      const answer = yield* Effect.either(read(parseIfNoneMatch(request.headers["if-none-match"])))
      if (Either.isLeft(answer)) return fallback()
      const { etag, body } = answer.right
      const headers: OutgoingHttpHeaders = { etag: `"${etag}"`, "cache-control": "no-cache" }
      if (body !== null) {
        headers["content-type"] = "application/json"
        headers["content-length"] = body.length
      }
      headers["x-request-id"] = requestId
      Object.assign(headers, corsHeaders(request.headers))
      const status = body === null ? 304 : 200
      response.writeHead(status, headers)
      response.end(body)
      yield* Effect.logInfo("http request").pipe(
        Effect.annotateLogs({
          requestId,
          method: "GET",
          path,
          status,
          durationMs: Math.round((performance.now() - startedAt) * 1000) / 1000
        })
      )
    }).pipe(
      lifecycle.track,
      // A defect before anything was written: the platform answers (and reports) it.
      Effect.catchAllCause(() => Effect.sync(() => response.headersSent || fallback()))
    )
  }

  const preempt: Preempt = (request, response, fallback) => {
    const url = request.url
    if (request.method !== "GET" || url === undefined || request.headers.upgrade !== undefined) return false
    const queryAt = url.indexOf("?")
    const path = queryAt === -1 ? url : url.slice(0, queryAt)
    const read = readOf(path, queryAt === -1 ? "" : url.slice(queryAt + 1))
    if (read === undefined) return false
    runFork(serve(request, response, path, read, fallback))
    return true
  }

  return Option.isSome(config.otlpEndpoint) ? Option.none<Preempt>() : Option.some(preempt)
})
