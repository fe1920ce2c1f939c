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

/** A frame that is not JSON or not a known message type. */
export class InvalidMessage extends Schema.TaggedError<InvalidMessage>()("InvalidMessage", {
  message: Schema.String
}) {
  readonly code = "INVALID_MESSAGE"
}

export class MessageTooLarge extends Schema.TaggedError<MessageTooLarge>()("MessageTooLarge", {
  limit: Schema.Number,
  unit: Schema.Literal("characters", "bytes")
}) {
  readonly code = "MESSAGE_TOO_LARGE"
  override get message() {
    return `message exceeds ${this.limit} ${this.unit}`
  }
}

/** The project already has an answer streaming; one at a time. */
export class ChatBusy extends Schema.TaggedError<ChatBusy>()("ChatBusy", {
  messageId: Schema.String
}) {
  readonly code = "BUSY"
  override get message() {
    return "an answer is already being generated for this project; wait for it or cancel it"
  }
}

export class ShuttingDown extends Schema.TaggedError<ShuttingDown>()("ShuttingDown", {}) {
  readonly code = "SHUTTING_DOWN"
  override get message() {
    return "the service is restarting; send the message again in a moment"
  }
}

/** A browser page from an origin outside CORS_ORIGINS tried to open the chat socket. */
export class ForbiddenOrigin extends Schema.TaggedError<ForbiddenOrigin>()("ForbiddenOrigin", {
  origin: Schema.String
}) {
  readonly code = "FORBIDDEN_ORIGIN"
  override get message() {
    return "origin not allowed"
  }
}

/** This instance already runs MAX_ACTIVE_ANSWERS answers; nothing was stored, retrying later can succeed. */
export class AtCapacity extends Schema.TaggedError<AtCapacity>()("AtCapacity", {
  limit: Schema.Number
}) {
  readonly code = "AT_CAPACITY"
  override get message() {
    return "the service is answering as many messages as it can; send the message again in a moment"
  }
}

/** The connection sent more chat messages than WS_MESSAGES_PER_MINUTE allows. */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  limitPerMinute: Schema.Number
}) {
  readonly code = "RATE_LIMITED"
  override get message() {
    return `more than ${this.limitPerMinute} messages a minute on this connection; wait a moment`
  }
}

/** AUTH_TOKEN is set and the request did not carry it. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {}) {
  readonly code = "UNAUTHORIZED"
  override get message() {
    return "missing or invalid access token"
  }
}
