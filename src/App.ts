import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { AnswerRunner } from "./chat/AnswerRunner.js"
import { Answers } from "./chat/Answers.js"
import { AnswerStore } from "./chat/AnswerStore.js"
import { Chat } from "./chat/Chat.js"
import { Rooms } from "./chat/Rooms.js"
import { Titles } from "./chat/Titles.js"
import { Instances } from "./cluster/Instances.js"
import { Ownership } from "./cluster/Ownership.js"
import { PgBusLive } from "./cluster/PgBus.js"
import { Relay } from "./cluster/Relay.js"
import { ClaudeLive } from "./claude/ClaudeLive.js"
import { DemoModelLive } from "./claude/DemoModel.js"
import { AppConfig } from "./Config.js"
import { DatabaseLive } from "./db/Database.js"
import { Health } from "./health/Health.js"
import { HttpServerLive } from "./http/Server.js"
import { Lifecycle } from "./Lifecycle.js"
import { Messages } from "./messages/Messages.js"
import { loggingFromConfig } from "./observability/Logging.js"
import { TelemetryLive } from "./observability/Telemetry.js"
import { KnownProjects } from "./projects/KnownProjects.js"
import { Projects } from "./projects/Projects.js"

/** Claude with an API key; otherwise (never in production, Config sees to that) the offline demo model. */
const ModelLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    Option.match(config.claudeApiKey, { onNone: () => DemoModelLive, onSome: ClaudeLive })
  )
)

/**
 * The shared infrastructure: the database (DATABASE_URL or embedded) and the bus on it (one
 * extra connection). The bus is released first, before the pool and the embedded server.
 */
export const InfrastructureLive = PgBusLive.pipe(Layer.provideMerge(DatabaseLive))

/** What the HTTP handlers and the chat read and write: the repositories, and the health probe. */
export const StorageLive = KnownProjects.Default.pipe(
  Layer.provideMerge(Layer.mergeAll(Projects.Default, Messages.Default, Health.Default))
)

/**
 * The chat and its parts, on whichever model is provided (tests provide a scripted one);
 * one `Rooms` is shared by all of them (a layer is built once).
 */
export const ChatOnModel = Chat.Default.pipe(
  Layer.provide(AnswerRunner.Default),
  Layer.provide(Answers.Default),
  Layer.provide(Titles.Default),
  Layer.provide(AnswerStore.Default),
  Layer.provide(Relay.Default),
  Layer.provide(Rooms.Default)
)

/** What ties the instances on one database together besides the bus: the heartbeats, the ownership locks. */
export const ClusterLive = Layer.mergeAll(Ownership.Default, Instances.Default)

const ChatLive = ChatOnModel.pipe(Layer.provide(ModelLive))

/**
 * The whole service as one layer, composed here and only here. Infrastructure (config,
 * database, bus) sits below the HTTP server so that on shutdown requests and answers drain
 * before the pool closes. `main.ts` launches it; tests build it against their own database.
 */
export const AppLive = HttpServerLive.pipe(
  Layer.provide(ChatLive),
  Layer.provideMerge(StorageLive),
  Layer.provide(ClusterLive),
  Layer.provide(InfrastructureLive),
  Layer.provide(Lifecycle.Default),
  Layer.provide(TelemetryLive),
  Layer.provide(loggingFromConfig),
  Layer.provide(AppConfig.layer)
)
