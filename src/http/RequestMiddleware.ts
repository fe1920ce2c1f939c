import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { randomUUID } from "node:crypto"
import { PayloadTooLarge, ValidationError } from "../domain/Errors.js"
import type { Lifecycle } from "../Lifecycle.js"
import { MAX_JSON_DEPTH, nestsDeeperThan } from "./JsonNesting.js"

const WELL_FORMED_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** A caller's `X-Request-Id` when it is safe to log and echo, otherwise a fresh UUID. */
export const requestIdOf = (given: string | undefined): string =>
  given !== undefined && WELL_FORMED_REQUEST_ID.test(given) ? given : randomUUID()

const declaredLength = (request: HttpServerRequest.HttpServerRequest): number => {
  const raw = request.headers["content-length"]
  return raw === undefined ? 0 : Number(raw)
}

// The unread rest of the body would be taken for the next request: close after answering.
const tooLarge = (limitBytes: number) =>
  HttpServerResponse.unsafeJson(
    { error: new PayloadTooLarge({ limitBytes }).message, code: PayloadTooLarge.code },
    { status: PayloadTooLarge.status, headers: { connection: "close" } }
  )

const BODY_METHODS = new Set(["POST", "PUT", "PATCH"])

const tooDeep = HttpServerResponse.unsafeJson(
  { error: new ValidationError({ message: `JSON nested deeper than ${MAX_JSON_DEPTH} levels` }).message, code: ValidationError.code },
  { status: ValidationError.status }
)

/**
 * Refuses a JSON body nested deeper than MAX_JSON_DEPTH before anything parses or decodes
 * it (schema decoding recurses once per level: a deep body would overflow the stack). The
 * body is read once; the platform keeps it for the handler. A body that cannot be read is
 * left to the handler, which reports it as usual.
 */
const refuseDeepJson = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (!BODY_METHODS.has(request.method) || !(request.headers["content-type"] ?? "").includes("json")) return yield* app
    const body = yield* Effect.either(request.text)
    return Either.isRight(body) && nestsDeeperThan(body.right) ? tooDeep : yield* app
  })

/**
 * The outermost middleware: request id (log annotation and response header), the body
 * size limit (declared lengths are refused before reading; chunked bodies stop reading at
 * the limit), and one access-log line per request with status and duration.
 */
export const requestMiddleware =
  (maxBodyBytes: number, lifecycle: Lifecycle) =>
  <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const requestId = requestIdOf(request.headers["x-request-id"])
      const startedAt = performance.now()
      yield* Effect.annotateCurrentSpan("http.request_id", requestId)
      const echoRequestId = HttpServerResponse.setHeader("x-request-id", requestId)
      // The platform writes the response before middleware sees it: headers go on through this hook.
      yield* HttpApp.appendPreResponseHandler((_, response) =>
        Effect.succeed(
          response.status === 413
            ? HttpServerResponse.setHeader(echoRequestId(response), "connection", "close")
            : echoRequestId(response)
        )
      )
      const handled = declaredLength(request) > maxBodyBytes
        ? Effect.succeed(echoRequestId(tooLarge(maxBodyBytes)))
        : HttpIncomingMessage.withMaxBodySize(refuseDeepJson(app), Option.some(maxBodyBytes))
      // Upgraded sockets live for hours; the chat service drains those itself.
      const isUpgrade = request.headers["upgrade"] !== undefined
      const exit = yield* Effect.exit(isUpgrade ? handled : lifecycle.track(handled)).pipe(
        Effect.annotateLogs("requestId", requestId)
      )
      // 499 (nginx's "client closed request"): the client went away, nothing failed here.
      const status = Exit.isSuccess(exit) ? exit.value.status : Exit.isInterrupted(exit) ? 499 : 500
      const durationMs = Math.round((performance.now() - startedAt) * 1000) / 1000
      const log = status >= 500 ? Effect.logWarning : Effect.logInfo
      yield* log("http request").pipe(
        Effect.annotateLogs({
          requestId,
          method: request.method,
          path: request.url.split("?")[0] ?? request.url,
          status,
          durationMs
        })
      )
      return yield* exit
    })
