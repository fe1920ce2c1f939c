import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authorization } from "./Auth.js"
import { HealthReport, UnhealthyBody } from "../health/HealthReport.js"
import { ProjectId } from "../domain/Ids.js"
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

export class ProjectsGroup extends HttpApiGroup.make("projects")
  .add(
    HttpApiEndpoint.post("create", "/api/projects")
      // An empty body reads as null: the title is optional, so is the body.
      .setPayload(Schema.NullOr(CreateProjectRequest))
      .addSuccess(Project, { status: 201 })
  )
  .add(HttpApiEndpoint.get("list", "/api/projects").addSuccess(ProjectList))
  .add(
    HttpApiEndpoint.get("get", "/api/projects/:id")
      .setPath(ProjectPath)
      .addSuccess(ProjectWithMessages)
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
  .annotate(OpenApi.Description, "Projects REST API; chat streams over the WebSocket at /ws/chat?projectId=…")
{}
