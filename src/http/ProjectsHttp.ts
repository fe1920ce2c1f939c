import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { TRUSTED } from "../domain/Trusted.js"
import { ProjectList } from "../domain/Project.js"
import { Projects } from "../projects/Projects.js"
import { GoChatApi } from "./Api.js"

export const ProjectsHttpLive = HttpApiBuilder.group(GoChatApi, "projects", (handlers) =>
  Effect.gen(function* () {
    const projects = yield* Projects
    return handlers
      .handle("create", ({ payload }) => projects.create(payload?.title))
      .handle("list", () => Effect.map(projects.list, (list) => new ProjectList({ projects: list }, TRUSTED)))
      .handle("get", ({ path }) => projects.getWithMessages(path.id))
      .handle("rename", ({ path, payload }) => projects.rename(path.id, payload.title))
      .handle("remove", ({ path }) => projects.remove(path.id))
  })
)
