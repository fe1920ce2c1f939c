import * as Schema from "effect/Schema"

/*
 * Every failure a client can see. Each class states its wire identity once: the PRD's
 * stable `code` and, where it can be a REST answer, its HTTP `status`. The REST bodies
 * (http/ErrorBodies.ts) and the WebSocket `error` event (chat/Events.ts) both derive from
 * these; services never know about HTTP.
 */

export class ValidationError extends Schema.TaggedError<ValidationError>()("ValidationError", {
  message: Schema.String
}) {
  static readonly code = "VALIDATION_ERROR"
  static readonly status = 400
  readonly code = ValidationError.code
}

export class ProjectNotFound extends Schema.TaggedError<ProjectNotFound>()("ProjectNotFound", {
  projectId: Schema.String
}) {
  static readonly code = "PROJECT_NOT_FOUND"
  static readonly status = 404
  readonly code = ProjectNotFound.code
  override get message() {
    return "project not found"
  }
}

export class RouteNotFound extends Schema.TaggedError<RouteNotFound>()("RouteNotFound", {
  method: Schema.String,
  path: Schema.String
}) {
  static readonly code = "NOT_FOUND"
  static readonly status = 404
  readonly code = RouteNotFound.code
  override get message() {
    return `no route for ${this.method} ${this.path}`
  }
}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  limitBytes: Schema.Number
}) {
  static readonly code = "PAYLOAD_TOO_LARGE"
  static readonly status = 413
  readonly code = PayloadTooLarge.code
  override get message() {
    return `request body exceeds ${this.limitBytes} bytes`
  }
}

/**
 * PostgreSQL cannot be reached; retrying later can succeed. The PRD names it
 * `DB_UNAVAILABLE` on REST and `DB_ERROR` on the WebSocket.
 */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()("DatabaseUnavailable", {
  cause: Schema.optional(Schema.Defect)
}) {
  static readonly code = "DB_UNAVAILABLE"
  static readonly webSocketCode = "DB_ERROR"
  static readonly status = 503
  readonly code = DatabaseUnavailable.code
  override get message() {
    return "database unavailable"
  }
}

/** A bug: logged in full with the request id, reported to clients without details. */
export class InternalError extends Schema.TaggedError<InternalError>()("InternalError", {}) {
  static readonly code = "INTERNAL_ERROR"
  static readonly status = 500
  readonly code = InternalError.code
  override get message() {
    return "internal server error"
  }
}

/** A frame that is not JSON or not a known message type. */
export class InvalidMessage extends Schema.TaggedError<InvalidMessage>()("InvalidMessage", {
  message: Schema.String
}) {
  static readonly code = "INVALID_MESSAGE"
  readonly code = InvalidMessage.code
}

export class MessageTooLarge extends Schema.TaggedError<MessageTooLarge>()("MessageTooLarge", {
  limit: Schema.Number,
  unit: Schema.Literal("characters", "bytes")
}) {
  static readonly code = "MESSAGE_TOO_LARGE"
  readonly code = MessageTooLarge.code
  override get message() {
    return `message exceeds ${this.limit} ${this.unit}`
  }
}

/** The project already has an answer streaming; one at a time. */
export class ChatBusy extends Schema.TaggedError<ChatBusy>()("ChatBusy", {
  messageId: Schema.String
}) {
  static readonly code = "BUSY"
  readonly code = ChatBusy.code
  override get message() {
    return "an answer is already being generated for this project; wait for it or cancel it"
  }
}

export class ShuttingDown extends Schema.TaggedError<ShuttingDown>()("ShuttingDown", {}) {
  static readonly code = "SHUTTING_DOWN"
  readonly code = ShuttingDown.code
  override get message() {
    return "the service is restarting; send the message again in a moment"
  }
}

/** A browser page from an origin outside CORS_ORIGINS tried to open the chat socket. */
export class ForbiddenOrigin extends Schema.TaggedError<ForbiddenOrigin>()("ForbiddenOrigin", {
  origin: Schema.String
}) {
  static readonly code = "FORBIDDEN_ORIGIN"
  static readonly status = 403
  readonly code = ForbiddenOrigin.code
  override get message() {
    return "origin not allowed"
  }
}

/** This instance already runs MAX_ACTIVE_ANSWERS answers; nothing was stored, retrying later can succeed. */
export class AtCapacity extends Schema.TaggedError<AtCapacity>()("AtCapacity", {
  limit: Schema.Number
}) {
  static readonly code = "AT_CAPACITY"
  readonly code = AtCapacity.code
  override get message() {
    return "the service is answering as many messages as it can; send the message again in a moment"
  }
}

/** The connection sent more chat messages than WS_MESSAGES_PER_MINUTE allows. */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  limitPerMinute: Schema.Number
}) {
  static readonly code = "RATE_LIMITED"
  readonly code = RateLimited.code
  override get message() {
    return `more than ${this.limitPerMinute} messages a minute on this connection; wait a moment`
  }
}

/** AUTH_TOKEN is set and the request did not carry it. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {}) {
  static readonly code = "UNAUTHORIZED"
  static readonly status = 401
  readonly code = Unauthorized.code
  override get message() {
    return "missing or invalid access token"
  }
}
