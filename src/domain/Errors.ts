import { Schema } from "effect"

/**
 * Every failure a client can see. Each carries a stable `code` (the PRD's error codes)
 * that the HTTP and WebSocket adapters put on the wire; services never know about HTTP.
 */

export class ValidationError extends Schema.TaggedError<ValidationError>()("ValidationError", {
  message: Schema.String
}) {
  readonly code = "VALIDATION_ERROR"
}

export class ProjectNotFound extends Schema.TaggedError<ProjectNotFound>()("ProjectNotFound", {
  projectId: Schema.String
}) {
  readonly code = "PROJECT_NOT_FOUND"
  override get message() {
    return "project not found"
  }
}

export class RouteNotFound extends Schema.TaggedError<RouteNotFound>()("RouteNotFound", {
  method: Schema.String,
  path: Schema.String
}) {
  readonly code = "NOT_FOUND"
  override get message() {
    return `no route for ${this.method} ${this.path}`
  }
}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  limitBytes: Schema.Number
}) {
  readonly code = "PAYLOAD_TOO_LARGE"
  override get message() {
    return `request body exceeds ${this.limitBytes} bytes`
  }
}

/** PostgreSQL cannot be reached; retrying later can succeed. */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()("DatabaseUnavailable", {
  cause: Schema.optional(Schema.Defect)
}) {
  readonly code = "DB_UNAVAILABLE"
  override get message() {
    return "database unavailable"
  }
}

/** A bug: logged in full with the request id, reported to clients without details. */
export class InternalError extends Schema.TaggedError<InternalError>()("InternalError", {}) {
  readonly code = "INTERNAL_ERROR"
  override get message() {
    return "internal server error"
  }
}
