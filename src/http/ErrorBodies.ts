import { HttpApiSchema } from "@effect/platform"
import { Schema } from "effect"
import {
  DatabaseUnavailable,
  ForbiddenOrigin,
  InternalError,
  PayloadTooLarge,
  ProjectNotFound,
  RouteNotFound,
  Unauthorized,
  ValidationError
} from "../domain/Errors.js"

/**
 * The PRD's error shape, `{"error": "...", "code": "..."}`, as the wire form of a domain
 * error: the OpenAPI document shows exactly what clients receive, and the literal `code`
 * keeps errors that share a status from being confused with each other.
 */
const errorBody = <E extends { readonly message: string; readonly code: C }, I, const C extends string>(
  error: Schema.Schema<E, I>,
  options: { readonly code: C; readonly status: number; readonly fromMessage: (message: string) => E }
) =>
  Schema.transform(
    Schema.Struct({ error: Schema.String, code: Schema.Literal(options.code) }),
    Schema.typeSchema(error),
    {
      strict: true,
      decode: (body) => options.fromMessage(body.error),
      encode: (error) => ({ error: error.message, code: options.code })
    }
  ).annotations(HttpApiSchema.annotations({ status: options.status }))

export const ValidationErrorBody = errorBody(ValidationError, {
  code: "VALIDATION_ERROR",
  status: 400,
  fromMessage: (message) => new ValidationError({ message })
})

export const ProjectNotFoundBody = errorBody(ProjectNotFound, {
  code: "PROJECT_NOT_FOUND",
  status: 404,
  fromMessage: () => new ProjectNotFound({ projectId: "" })
})

export const RouteNotFoundBody = errorBody(RouteNotFound, {
  code: "NOT_FOUND",
  status: 404,
  fromMessage: () => new RouteNotFound({ method: "", path: "" })
})

export const PayloadTooLargeBody = errorBody(PayloadTooLarge, {
  code: "PAYLOAD_TOO_LARGE",
  status: 413,
  fromMessage: () => new PayloadTooLarge({ limitBytes: 0 })
})

export const DatabaseUnavailableBody = errorBody(DatabaseUnavailable, {
  code: "DB_UNAVAILABLE",
  status: 503,
  fromMessage: () => new DatabaseUnavailable({})
})

export const InternalErrorBody = errorBody(InternalError, {
  code: "INTERNAL_ERROR",
  status: 500,
  fromMessage: () => new InternalError()
})

export const ForbiddenOriginBody = errorBody(ForbiddenOrigin, {
  code: "FORBIDDEN_ORIGIN",
  status: 403,
  fromMessage: () => new ForbiddenOrigin({ origin: "" })
})

export const UnauthorizedBody = errorBody(Unauthorized, {
  code: "UNAUTHORIZED",
  status: 401,
  fromMessage: () => new Unauthorized()
})
