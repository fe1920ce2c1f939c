import * as Effect from "effect/Effect"
import type { ServerEvent } from "../domain/ChatProtocol.js"
import { ProjectId } from "../domain/Ids.js"
import { fetchRestClient, type RestClientOptions } from "./RestClient.js"

type MessageComplete = Extract<ServerEvent, { readonly type: "message_complete" }>

/** The REST base URL for a service given as `ws(s)://…` or `http(s)://…`. */
const httpBaseUrl = (baseUrl: string): string => {
  const url = new URL(baseUrl)
  if (url.protocol === "ws:") url.protocol = "http:"
  if (url.protocol === "wss:") url.protocol = "https:"
  return url.origin
}

/**
 * An answer that ended while the client was away sends nothing on reconnect (the server
 * only catches up answers still running): read the stored answers and return a
 * `message_complete` for each of `messageIds` that is final there. Failures count as "not
 * yet": the next reconnect or live event settles it.
 */
export const storedCompletions = (
  options: RestClientOptions & { readonly projectId: string },
  messageIds: ReadonlyArray<string>
): Promise<ReadonlyArray<MessageComplete>> =>
  Effect.gen(function* () {
    const client = yield* fetchRestClient({ ...options, baseUrl: httpBaseUrl(options.baseUrl) })
    const project = yield* client.projects.get({ path: { id: ProjectId.make(options.projectId) }, urlParams: {}, headers: {} })
    // No If-None-Match was sent, so never a 304 (void); TypeScript cannot know that.
    if (!project) return []
    return project.messages
      .filter((message) => messageIds.includes(message.id) && message.status !== "streaming")
      .map((message): MessageComplete => ({
        type: "message_complete",
        messageId: message.id,
        fullContent: message.content,
        codeBlocks: message.codeBlocks ?? [],
        status: message.status === "streaming" ? "interrupted" : message.status,
        stopReason: message.stopReason ?? null,
        continuations: message.continuations ?? 0,
        usage: message.usage ?? null,
        timestamp: new Date().toISOString()
      }))
  }).pipe(Effect.catchAll(() => Effect.succeed([])), Effect.catchAllDefect(() => Effect.succeed([])), Effect.runPromise)
