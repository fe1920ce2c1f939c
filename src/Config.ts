import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

/** Every setting of the service, read once from the environment at startup. */
export interface AppConfigShape {
  readonly nodeEnv: "development" | "production" | "test"
  readonly host: string
  readonly port: number
  /** None: start the embedded PostgreSQL (never in production). */
  readonly databaseUrl: Option.Option<Redacted.Redacted<string>>
  readonly dataDir: string
  readonly embeddedPostgresPort: number
  /** None: chat is served by the offline demo model (never in production). */
  readonly claudeApiKey: Option.Option<Redacted.Redacted<string>>
  readonly claudeBaseUrl: string
  readonly claudeModel: string
  readonly claudeTitleModel: string
  readonly claudeMaxTokens: number
  readonly claudeMaxRetries: number
  readonly claudeIdleTimeout: Duration.Duration
  /** Extra requests an answer that stopped at max_tokens may take to finish. */
  readonly claudeMaxContinuations: number
  /** Continuations after transient failures mid-answer (overloaded, reset, stalled). */
  readonly claudeStreamRetries: number
  /** Prompt caching of answer requests: the cache entry's lifetime, or off. */
  readonly claudeCacheTtl: "5m" | "1h" | "off"
  /** Answers interrupted (crash, shutdown) less than this ago are continued at the next start. */
  readonly resumeInterruptedWithin: Duration.Duration
  readonly contextMessageLimit: number
  readonly contextTokenBudget: number
  readonly maxMessageChars: number
  readonly maxBodyBytes: number
  /** Bytes of REST bodies kept to answer repeated reads (`ReadCache`); 0 turns it off. */
  readonly restCacheBytes: number
  readonly logLevel: LogLevel.LogLevel
  /** Empty means any origin (`*`). */
  readonly corsOrigins: ReadonlyArray<string>
  readonly wsPingInterval: Duration.Duration
  readonly wsPongTimeout: Duration.Duration
  readonly shutdownGrace: Duration.Duration
  readonly checkpointInterval: Duration.Duration
  readonly otlpEndpoint: Option.Option<string>
  readonly otelServiceName: string
  // ---- hardening (issue 10): limits on what one client can cost ----
  /** None: no access token is required (the PRD's single-user MVP); warned about in production. */
  readonly authToken: Option.Option<Redacted.Redacted<string>>
  /** Answers running at once on this instance; a send above it gets AT_CAPACITY. */
  readonly maxActiveAnswers: number
  /** chat_message and continue frames one connection may send per minute; above it, RATE_LIMITED. */
  readonly wsMessagesPerMinute: number
  /** A socket whose unsent bytes pass this is terminated (its client stopped reading). */
  readonly wsMaxBufferedBytes: number
  /** Frames received but not yet handled, per socket; above it the socket is closed with 1008. */
  readonly wsMaxQueuedFrames: number
  /** Open TCP connections (HTTP and WebSocket) the server accepts at once. */
  readonly maxConnections: number
  /** Time a client has to send a request's headers. */
  readonly httpHeadersTimeout: Duration.Duration
  /** Time a client has to send a whole request (not counting an upgraded socket's life). */
  readonly httpRequestTimeout: Duration.Duration
}

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    // Validate before defaulting: after withDefault the error loses the variable's name.
    Config.validate({ message: "Expected a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

/** An integer within [min, max]; 0 is allowed where it means "never". */
const boundedInt = (name: string, min: number, max: number, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: `Expected an integer from ${min} to ${max}`, validation: (n) => n >= min && n <= max }),
    Config.withDefault(fallback)
  )

const seconds = (name: string, fallback: number) =>
  positiveInt(name, fallback).pipe(Config.map((s) => Duration.seconds(s)))

const nodeEnv = Config.literal("development", "production", "test")("NODE_ENV").pipe(
  Config.withDefault("development" as const)
)

/** A secret that may be absent, except in production where its absence is a startup error. */
const requiredInProduction = <A>(name: string, config: Config.Config<Option.Option<A>>) =>
  Config.all([nodeEnv, config]).pipe(
    Config.mapOrFail(([env, value]) =>
      env === "production" && Option.isNone(value)
        ? Either.left(ConfigError.MissingData([name], `${name} is required when NODE_ENV=production`))
        : Either.right(value)
    )
  )

/** An optional variable; set but empty (as compose and .env files often leave them) counts as unset. */
const optional = (name: string) =>
  Config.option(Config.string(name)).pipe(Config.map(Option.filter((value) => value.trim().length > 0)))

const nonEmptySecret = (name: string) => optional(name).pipe(Config.map(Option.map(Redacted.make)))

const claudeApiKey = Config.all([nonEmptySecret("CLAUDE_API_KEY"), nonEmptySecret("ANTHROPIC_API_KEY")]).pipe(
  Config.map(([primary, conventional]) => Option.orElse(primary, () => conventional))
)

const isHttpUrl = (url: string) => /^https?:\/\/[^\s]+$/.test(url)

const httpUrl = (name: string) =>
  Config.string(name).pipe(Config.validate({ message: "Expected an http(s) URL", validation: isHttpUrl }))

/** PRD names (debug, info, warn, error), plus trace, warning, fatal and none, case-insensitive. */
const LOG_LEVELS: Record<string, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
}

const logLevel = Config.string("LOG_LEVEL").pipe(
  Config.withDefault("info"),
  Config.mapOrFail((raw) => {
    const level = LOG_LEVELS[raw.trim().toLowerCase()]
    return level === undefined
      ? Either.left(ConfigError.InvalidData(["LOG_LEVEL"], `Expected one of trace, debug, info, warn, error, fatal, none but received "${raw}"`))
      : Either.right(level)
  })
)

const CACHE_TTLS = ["5m", "1h", "off"] as const

const claudeCacheTtl = Config.string("CLAUDE_CACHE_TTL").pipe(
  Config.withDefault("5m"),
  Config.mapOrFail((raw) => {
    const ttl = CACHE_TTLS.find((known) => known === raw.trim().toLowerCase())
    return ttl === undefined
      ? Either.left(ConfigError.InvalidData(["CLAUDE_CACHE_TTL"], `Expected one of 5m, 1h, off but received "${raw}"`))
      : Either.right(ttl)
  })
)

/** 0 asks the OS for a free port (tests). */
const port = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "Expected a port from 0 to 65535", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(fallback)
  )

const corsOrigins = Config.string("CORS_ORIGINS").pipe(
  Config.withDefault("*"),
  Config.map((raw) => raw.split(",").map((origin) => origin.trim()).filter((origin) => origin.length > 0)),
  Config.map((origins) => (origins.includes("*") ? [] : origins))
)

export const appConfig: Config.Config<AppConfigShape> = Config.all({
  nodeEnv,
  host: Config.string("HOST").pipe(Config.withDefault("0.0.0.0")),
  port: port("PORT", 8080),
  databaseUrl: requiredInProduction("DATABASE_URL", nonEmptySecret("DATABASE_URL")),
  dataDir: Config.string("DATA_DIR").pipe(Config.withDefault(".data")),
  embeddedPostgresPort: port("EMBEDDED_PG_PORT", 54329),
  claudeApiKey: requiredInProduction("CLAUDE_API_KEY", claudeApiKey),
  claudeBaseUrl: httpUrl("CLAUDE_BASE_URL").pipe(Config.withDefault("https://api.anthropic.com")),
  claudeModel: Config.nonEmptyString("CLAUDE_MODEL").pipe(Config.withDefault("claude-sonnet-5-5")),
  claudeTitleModel: Config.nonEmptyString("CLAUDE_TITLE_MODEL").pipe(Config.withDefault("claude-haiku-5-5")),
  claudeMaxTokens: positiveInt("CLAUDE_MAX_TOKENS", 4096),
  claudeMaxRetries: boundedInt("CLAUDE_MAX_RETRIES", 0, 10, 2),
  claudeIdleTimeout: seconds("CLAUDE_IDLE_TIMEOUT_SECONDS", 60),
  claudeMaxContinuations: boundedInt("CLAUDE_MAX_CONTINUATIONS", 0, 20, 3),
  claudeStreamRetries: boundedInt("CLAUDE_STREAM_RETRIES", 0, 10, 2),
  claudeCacheTtl,
  resumeInterruptedWithin: boundedInt("RESUME_INTERRUPTED_WITHIN_SECONDS", 0, 86_400, 600).pipe(
    Config.map((s) => Duration.seconds(s))
  ),
  contextMessageLimit: positiveInt("CONTEXT_MESSAGE_LIMIT", 20),
  contextTokenBudget: positiveInt("CONTEXT_TOKEN_BUDGET", 160_000),
  maxMessageChars: positiveInt("MAX_MESSAGE_CHARS", 100_000),
  maxBodyBytes: positiveInt("MAX_BODY_BYTES", 1_048_576),
  restCacheBytes: boundedInt("REST_CACHE_MB", 0, 65_536, 16).pipe(Config.map((mb) => mb * 1024 * 1024)),
  logLevel,
  corsOrigins,
  wsPingInterval: seconds("WS_PING_INTERVAL", 30),
  wsPongTimeout: seconds("WS_PONG_TIMEOUT", 60),
  shutdownGrace: seconds("SHUTDOWN_GRACE_SECONDS", 25),
  checkpointInterval: positiveInt("CHECKPOINT_INTERVAL_MS", 1000).pipe(Config.map((ms) => Duration.millis(ms))),
  otlpEndpoint: optional("OTEL_EXPORTER_OTLP_ENDPOINT").pipe(
    Config.mapOrFail((url) =>
      Option.isSome(url) && !isHttpUrl(url.value)
        ? Either.left(ConfigError.InvalidData(["OTEL_EXPORTER_OTLP_ENDPOINT"], "Expected an http(s) URL"))
        : Either.right(url)
    )
  ),
  otelServiceName: Config.nonEmptyString("OTEL_SERVICE_NAME").pipe(Config.withDefault("go-chat-backend")),
  // ---- hardening (issue 10) ----
  authToken: nonEmptySecret("AUTH_TOKEN"),
  maxActiveAnswers: positiveInt("MAX_ACTIVE_ANSWERS", 100),
  wsMessagesPerMinute: positiveInt("WS_MESSAGES_PER_MINUTE", 30),
  wsMaxBufferedBytes: positiveInt("WS_MAX_BUFFERED_BYTES", 8 * 1024 * 1024),
  wsMaxQueuedFrames: positiveInt("WS_MAX_QUEUED_FRAMES", 64),
  maxConnections: positiveInt("MAX_CONNECTIONS", 10_000),
  httpHeadersTimeout: seconds("HTTP_HEADERS_TIMEOUT_SECONDS", 20),
  httpRequestTimeout: seconds("HTTP_REQUEST_TIMEOUT_SECONDS", 60)
})

/** Flattens a ConfigError tree into one line per bad variable, so operators see every problem at once. */
export const describeConfigError = (error: ConfigError.ConfigError): ReadonlyArray<string> =>
  ConfigError.reduceWithContext<undefined, ReadonlyArray<string>>(error, undefined, {
    andCase: (_, left, right) => [...left, ...right],
    orCase: (_, left, right) => [...left, ...right],
    invalidDataCase: (_, path, message) => [`${path.join(".")}: ${message}`],
    missingDataCase: (_, path, message) => [`${path.join(".")}: ${message}`],
    sourceUnavailableCase: (_, path, message) => [`${path.join(".")}: ${message}`],
    unsupportedCase: (_, path, message) => [`${path.join(".")}: ${message}`]
  }).filter((line, index, lines) => lines.indexOf(line) === index)

export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  problems: Schema.Array(Schema.String)
}) {
  override get message() {
    return `invalid configuration: ${this.problems.join("; ")}`
  }
}

export class AppConfig extends Context.Tag("AppConfig")<AppConfig, AppConfigShape>() {
  /** Reads the environment through the current ConfigProvider (tests swap it for a map). */
  static readonly layer = Layer.effect(
    AppConfig,
    Effect.mapError(appConfig, (error) => new InvalidConfig({ problems: describeConfigError(error) }))
  )
}
