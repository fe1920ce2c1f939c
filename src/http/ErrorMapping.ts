import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiError from "@effect/platform/HttpApiError"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { InternalError, PayloadTooLarge, RouteNotFound, ValidationError } from "../domain/Errors.js"
import { AppConfig } from "../Config.js"
import { GoChatApi } from "./Api.js"
import { boundedMessage } from "./JsonNesting.js"

const describeDecodeError = (error: HttpApiError.HttpApiDecodeError): string =>
  // Issues quote the refused value: cut short, a reply never echoes a large body back.
  boundedMessage(describeIssues(error))

const describeIssues = (error: HttpApiError.HttpApiDecodeError): string =>
  error.issues.length === 0
    ? error.message
    : error.issues
      .map((issue) => (issue.path.length > 0 ? `${issue.path.map(String).join(".")}: ${issue.message}` : issue.message))
      .join("; ")

const isBodyLimitError = (error: HttpServerError.RequestError) =>
  error.cause instanceof Error && error.cause.message === "maxBytes exceeded"

type ApiLevelError = ValidationError | RouteNotFound | PayloadTooLarge | InternalError

const toApiError = (cause: Cause.Cause<never>, maxBodyBytes: number): Effect.Effect<never, ApiLevelError> => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    // Typed `never` by HttpApp.Default, the failure is in fact any error an endpoint raised.
    const error: unknown = failure.value
    if (error instanceof HttpApiError.HttpApiDecodeError) {
      return Effect.fail(new ValidationError({ message: describeDecodeError(error) }))
    }
    if (error instanceof HttpServerError.RouteNotFound) {
      return Effect.fail(new RouteNotFound({ method: error.request.method, path: pathOf(error.request) }))
    }
    // Errors declared by the endpoints: the API encodes them with their own status.
    return Effect.failCause(cause)
  }
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect) && defect.value instanceof HttpServerError.RequestError) {
    return Effect.fail(
      isBodyLimitError(defect.value)
        ? new PayloadTooLarge({ limitBytes: maxBodyBytes })
        : new ValidationError({ message: "request body is not valid JSON" })
    )
  }
  if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
  return Effect.logError("unhandled error while serving a request", cause).pipe(
    Effect.zipRight(Effect.fail(new InternalError()))
  )
}

/**
 * Gives every failure the PRD's `{"error","code"}` shape: schema decode failures and
 * unreadable bodies become VALIDATION_ERROR, unknown routes NOT_FOUND, an oversized body
 * PAYLOAD_TOO_LARGE, and anything unexpected INTERNAL_ERROR, logged with its cause (which
 * never reaches the client).
 */
export const ErrorMappingLive = HttpApiBuilder.middleware(
  GoChatApi,
  Effect.map(AppConfig, ({ maxBodyBytes }) => (app: HttpApp.Default) =>
    Effect.catchAllCause(app, (cause) => toApiError(cause, maxBodyBytes))
  )
)

const pathOf = (request: HttpServerRequest.HttpServerRequest) => request.url.split("?")[0] ?? request.url
