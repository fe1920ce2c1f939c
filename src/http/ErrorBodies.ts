import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Schema from "effect/Schema"
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

/** An error class that can be a REST answer: its schema, and its code and status stated once. */
type RestError<E, I, C extends string> = Schema.Schema<E, I> & { readonly code: C; readonly status: number }

/**
 * The PRD's error shape, `{"error": "...", "code": "..."}`, as the wire form of a domain
 * error: the OpenAPI document shows exactly what clients receive, and the literal `code`
 * keeps errors that share a status from being confused with each other.
 */
const errorBody = <E extends { readonly message: string }, I, const C extends string>(
  error: RestError<E, I, C>,
  fromMessage: (message: string) => E
) =>
  Schema.transform(
    Schema.Struct({ error: Schema.String, code: Schema.Literal(error.code) }),
    Schema.typeSchema(error),
    {
      strict: true,
      decode: (body) => fromMessage(body.error),
      encode: (value) => ({ error: value.message, code: error.code })
    }
  ).annotations(HttpApiSchema.annotations({ status: error.status }))

export const ValidationErrorBody = errorBody(ValidationError, (message) => new ValidationError({ message }))
export const ProjectNotFoundBody = errorBody(ProjectNotFound, () => new ProjectNotFound({ projectId: "" }))
export const RouteNotFoundBody = errorBody(RouteNotFound, () => new RouteNotFound({ method: "", path: "" }))
export const PayloadTooLargeBody = errorBody(PayloadTooLarge, () => new PayloadTooLarge({ limitBytes: 0 }))
export const DatabaseUnavailableBody = errorBody(DatabaseUnavailable, () => new DatabaseUnavailable({}))
export const InternalErrorBody = errorBody(InternalError, () => new InternalError())
export const ForbiddenOriginBody = errorBody(ForbiddenOrigin, () => new ForbiddenOrigin({ origin: "" }))
export const UnauthorizedBody = errorBody(Unauthorized, () => new Unauthorized())
