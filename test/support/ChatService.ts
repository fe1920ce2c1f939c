/**
 * The chat service alone, composed as the app composes it (`ChatOnModel`) but on a
 * scripted `Claude`, a fresh database, and no HTTP server: tests call `Chat` through its
 * interface and listen with in-memory subscribers.
 */
import { SqlClient } from "@effect/sql"
import { ConfigProvider, Context, Effect, Layer } from "effect"
import { ChatOnModel, ClusterLive, InfrastructureLive, StorageLive } from "../../src/App.js"
import { Chat } from "../../src/chat/Chat.js"
import type { Subscriber } from "../../src/chat/Rooms.js"
import { AppConfig } from "../../src/Config.js"
import type { ProjectId } from "../../src/domain/Ids.js"
import { Lifecycle } from "../../src/Lifecycle.js"
import { Messages } from "../../src/messages/Messages.js"
import { loggingFromConfig } from "../../src/observability/Logging.js"
import { Projects } from "../../src/projects/Projects.js"
import { makeScriptedClaude } from "./ScriptedClaude.js"
import { freshDatabase } from "./TestDatabase.js"

/** A server event as a subscriber received it (the JSON the socket would carry). */
export type Received = Readonly<Record<string, unknown>> & { readonly type: string }

export interface MemorySubscriber {
  readonly subscriber: Subscriber
  readonly received: ReadonlyArray<Received>
  readonly closes: ReadonlyArray<{ readonly code: number; readonly reason: string }>
  /** Waits (liveness bound only) until `count` events of `type` arrived; returns them all. */
  readonly waitFor: (type: string, count?: number) => Effect.Effect<ReadonlyArray<Received>>
  /** Events of `type` received so far. */
  readonly ofType: (type: string) => ReadonlyArray<Received>
}

const LIVENESS_MS = 15_000

export const memorySubscriber = (): MemorySubscriber => {
  const received: Array<Received> = []
  const closes: Array<{ code: number; reason: string }> = []
  const ofType = (type: string) => received.filter((event) => event.type === type)
  return {
    subscriber: {
      send: (json) => void received.push(JSON.parse(json) as Received),
      close: (code, reason) => void closes.push({ code, reason })
    },
    received,
    closes,
    ofType,
    waitFor: (type, count = 1) =>
      Effect.gen(function* () {
        const deadline = Date.now() + LIVENESS_MS
        while (ofType(type).length < count) {
          if (Date.now() > deadline) {
            return yield* Effect.dieMessage(`no ${count}× ${type} within the liveness bound; received ${JSON.stringify(received)}`)
          }
          yield* Effect.sleep("2 millis")
        }
        return ofType(type)
      })
  }
}

/** `Chat` on a scripted model and a fresh database, plus what a test needs around it. */
export const startChatService = (
  env: Record<string, string> = {},
  options: { readonly countTokens?: Parameters<typeof makeScriptedClaude>[1] } = {}
) =>
  Effect.gen(function* () {
    const claude = yield* makeScriptedClaude(undefined, options.countTokens)
    const databaseUrl = env["DATABASE_URL"] ?? (yield* freshDatabase)
    const config = ConfigProvider.fromMap(
      new Map(Object.entries({ LOG_LEVEL: "error", DATABASE_URL: databaseUrl, CHECKPOINT_INTERVAL_MS: "60000", ...env }))
    )
    const layer = ChatOnModel.pipe(
      Layer.provide(claude.layer),
      Layer.provideMerge(StorageLive),
      Layer.provideMerge(ClusterLive),
      Layer.provideMerge(Lifecycle.Default),
      Layer.provideMerge(InfrastructureLive),
      Layer.provide(loggingFromConfig),
      Layer.provideMerge(AppConfig.layer),
      Layer.provide(Layer.setConfigProvider(config))
    )
    const context = yield* Layer.build(layer)
    const projects = Context.get(context, Projects)
    return {
      databaseUrl,
      claude,
      chat: Context.get(context, Chat),
      lifecycle: Context.get(context, Lifecycle),
      sql: Context.get(context, SqlClient.SqlClient),
      messages: Context.get(context, Messages),
      newProject: Effect.map(Effect.orDie(projects.create(undefined)), (project) => project.id as ProjectId)
    }
  })
