import { Effect, Layer, Option } from "effect"
import { Chat } from "./chat/Chat.js"
import { Titles } from "./chat/Titles.js"
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
import { Projects } from "./projects/Projects.js"

/** Claude with an API key; otherwise (never in production, Config sees to that) the offline demo model. */
const ModelLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    Option.match(config.claudeApiKey, { onNone: () => DemoModelLive, onSome: ClaudeLive })
  )
)

const RepositoriesLive = Layer.mergeAll(Projects.Default, Messages.Default, Health.Default)

const ChatLive = Chat.Default.pipe(Layer.provide(Titles.Default), Layer.provide(ModelLive))

/**
 * The whole service as one layer, composed here and only here. Infrastructure (config,
 * database) sits below the HTTP server so that on shutdown requests and answers drain
 * before the pool closes. `main.ts` launches it; tests build it against their own database.
 */
export const AppLive = HttpServerLive.pipe(
  Layer.provide(ChatLive),
  Layer.provideMerge(RepositoriesLive),
  Layer.provide(DatabaseLive),
  Layer.provide(Lifecycle.Default),
  Layer.provide(TelemetryLive),
  Layer.provide(loggingFromConfig),
  Layer.provide(AppConfig.layer)
)
