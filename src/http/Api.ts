import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { Authorization } from "./Authorization.js"
import { HealthReport, UnhealthyBody } from "../health/HealthReport.js"
import { ProjectId } from "../domain/Ids.js"
import { MessagesCursorParam, PageLimit, ProjectsCursorParam } from "../projects/Paging.js"
import {
  CreateProjectRequest,
  Project,
  ProjectList,
  ProjectWithMessages,
  RenameProjectRequest
} from "../domain/Project.js"
import {
  DatabaseUnavailableBody,
  ForbiddenOriginBody,
  InternalErrorBody,
  PayloadTooLargeBody,
  ProjectNotFoundBody,
  RouteNotFoundBody,
  ValidationErrorBody
} from "./ErrorBodies.js"

const ProjectPath = Schema.Struct({ id: ProjectId })

/** Conditional GET: the `ETag` of an earlier answer; a match is 304 with no body. */
const ConditionalHeaders = Schema.Struct({
  "if-none-match": Schema.optional(Schema.String).annotations({
    description: "ETag of an earlier answer: 304 Not Modified, no body, when nothing changed"
  })
})

/** 304: the client's copy (`If-None-Match`) is current; no body. */
const NotModified = HttpApiSchema.Empty(304).annotations({ description: "Not Modified: the copy with this ETag is current" })

const ProjectsPage = Schema.Struct({
  limit: Schema.optional(PageLimit),
  cursor: Schema.optional(ProjectsCursorParam)
})

const MessagesPage = Schema.Struct({
  messagesLimit: Schema.optional(PageLimit),
  before: Schema.optional(MessagesCursorParam)
})

export class ProjectsGroup extends HttpApiGroup.make("projects")
  .add(
    HttpApiEndpoint.post("create", "/api/projects")
      // An empty body reads as null: the title is optional, so is the body.
      .setPayload(Schema.NullOr(CreateProjectRequest))
      .addSuccess(Project, { status: 201 })
  )
  .add(
    HttpApiEndpoint.get("list", "/api/projects")
      .setUrlParams(ProjectsPage)
      .setHeaders(ConditionalHeaders)
      .addSuccess(ProjectList)
      .addSuccess(NotModified)
  )
  .add(
    HttpApiEndpoint.get("get", "/api/projects/:id")
      .setPath(ProjectPath)
      .setUrlParams(MessagesPage)
      .setHeaders(ConditionalHeaders)
      .addSuccess(ProjectWithMessages)
      .addSuccess(NotModified)
      .addError(ProjectNotFoundBody)
  )
  .add(
    HttpApiEndpoint.patch("rename", "/api/projects/:id")
      .setPath(ProjectPath)
      .setPayload(RenameProjectRequest)
      .addSuccess(Project)
      .addError(ProjectNotFoundBody)
  )
  .add(
    HttpApiEndpoint.del("remove", "/api/projects/:id")
      .setPath(ProjectPath)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(ProjectNotFoundBody)
  )
  .middleware(Authorization)
  .annotate(OpenApi.Description, "Projects: one conversation with Claude each, with its message history")
{}

export class HealthGroup extends HttpApiGroup.make("health")
  .add(
    HttpApiEndpoint.get("health", "/health")
      .addSuccess(HealthReport)
      .addError(UnhealthyBody, { status: 503 })
  )
{}

/** The REST API; the WebSocket route is added beside it on the same router. */
export class GoChatApi extends HttpApi.make("go-chat")
  .add(ProjectsGroup)
  .add(HealthGroup)
  .addError(ValidationErrorBody)
  .addError(RouteNotFoundBody)
  .addError(ProjectNotFoundBody)
  .addError(ForbiddenOriginBody)
  .addError(PayloadTooLargeBody)
  .addError(DatabaseUnavailableBody)
  .addError(InternalErrorBody)
  .annotate(OpenApi.Title, "Go Chat backend")
  .annotate(
    OpenApi.Description,
    "Projects REST API; chat streams over the WebSocket at /ws/chat?projectId=…, described in [the AsyncAPI document](/asyncapi.json). A playground page is at [/](/)."
  )
{}
