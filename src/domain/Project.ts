import * as Schema from "effect/Schema"
import { ProjectId } from "./Ids.js"
import { Message } from "./Message.js"
import { Usage } from "./Usage.js"

export const DEFAULT_TITLE = "New Project"

/** A title as users may set it: trimmed, 1 to 255 characters. */
export const ProjectTitle = Schema.Trim.pipe(
  Schema.minLength(1, { message: () => "title must not be empty" }),
  Schema.maxLength(255, { message: () => "title must be at most 255 characters" }),
  // PostgreSQL text cannot hold U+0000.
  Schema.filter((title) => !title.includes("\u0000"), { message: () => "title must not contain NUL characters" })
)

export class Project extends Schema.Class<Project>("Project")({
  id: ProjectId,
  title: Schema.String,
  createdAt: Schema.Date,
  updatedAt: Schema.Date
}) {}

export class ProjectSummary extends Schema.Class<ProjectSummary>("ProjectSummary")({
  ...Project.fields,
  messageCount: Schema.NonNegativeInt
}) {}

export class ProjectWithMessages extends Schema.Class<ProjectWithMessages>("ProjectWithMessages")({
  ...Project.fields,
  messages: Schema.Array(Message),
  /**
   * Tokens all the project's answers cost (every message, not only this page's); zeros when
   * none has usage. Always sent; optional in the schema so the PRD's shape stays as it was.
   */
  usage: Schema.optional(Usage),
  /** Only with `messagesLimit` or `before`: pass it as `before` for the older messages; null when there are none. */
  nextBefore: Schema.optional(Schema.NullOr(Schema.String))
}) {}

export class CreateProjectRequest extends Schema.Class<CreateProjectRequest>("CreateProjectRequest")({
  title: Schema.optional(ProjectTitle)
}) {}

export class RenameProjectRequest extends Schema.Class<RenameProjectRequest>("RenameProjectRequest")({
  title: ProjectTitle
}) {}

export class ProjectList extends Schema.Class<ProjectList>("ProjectList")({
  projects: Schema.Array(ProjectSummary),
  /** Only with `limit` or `cursor`: pass it as `cursor` for the next page; null on the last page. */
  nextCursor: Schema.optional(Schema.NullOr(Schema.String))
}) {}
