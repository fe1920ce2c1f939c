import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import { decodeCursor, type JsonRead, MessagesCursor, pageRequest, parseIfNoneMatch, ProjectsCursor } from "../projects/Paging.js"
import { Projects } from "../projects/Projects.js"
import { Chat } from "../chat/Chat.js"
import { KnownProjects } from "../projects/KnownProjects.js"
import { GoChatApi } from "./Api.js"

/**
 * The reads forward the JSON text PostgreSQL built, with its entity tag; `no-cache` makes
 * browsers revalidate with `If-None-Match` instead of guessing a freshness lifetime.
 */
const readResponse = (read: JsonRead) => {
  const headers = { etag: `"${read.etag}"`, "cache-control": "no-cache" }
  return read.body === null
    ? HttpServerResponse.empty({ status: 304, headers })
    : HttpServerResponse.uint8Array(read.body, { contentType: "application/json", headers })
}

export const ProjectsHttpLive = HttpApiBuilder.group(GoChatApi, "projects", (handlers) =>
  Effect.gen(function* () {
    const projects = yield* Projects
    const chat = yield* Chat
    const knownProjects = yield* KnownProjects
    const projectsCursor = decodeCursor(ProjectsCursor, "cursor")
    const messagesCursor = decodeCursor(MessagesCursor, "before")
    return handlers
      .handle("create", ({ payload }) => projects.create(payload?.title))
      .handle("list", ({ headers, urlParams }) =>
        projectsCursor(urlParams.cursor).pipe(
          Effect.flatMap((cursor) => projects.listJson(pageRequest(urlParams.limit, cursor), parseIfNoneMatch(headers["if-none-match"]))),
          Effect.map(readResponse)
        ))
      .handle("get", ({ headers, path, urlParams }) =>
        messagesCursor(urlParams.before).pipe(
          Effect.flatMap((before) =>
            projects.getJson(path.id, pageRequest(urlParams.messagesLimit, before), parseIfNoneMatch(headers["if-none-match"]))
          ),
          Effect.map(readResponse)
        ))
      .handle("rename", ({ path, payload }) => projects.rename(path.id, payload.title))
      .handle("remove", ({ path }) =>
        projects.remove(path.id).pipe(Effect.zipRight(knownProjects.forget(path.id)), Effect.zipRight(chat.projectDeleted(path.id))))
  })
)
