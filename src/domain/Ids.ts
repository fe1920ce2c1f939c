import * as Schema from "effect/Schema"

/** Validated before any query: an invalid UUID never reaches PostgreSQL. */
export const ProjectId = Schema.UUID.pipe(Schema.brand("ProjectId"))
export type ProjectId = typeof ProjectId.Type

export const MessageId = Schema.UUID.pipe(Schema.brand("MessageId"))
export type MessageId = typeof MessageId.Type
