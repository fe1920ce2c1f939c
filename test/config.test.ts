/**
 * The configuration as read at startup: defaults from PRD-002 and DESIGN.md, every bad
 * variable reported in one error, production requirements, the API key fallback, and
 * secrets that never print.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Either, Layer, LogLevel, Option, Redacted } from "effect"
import { inspect } from "node:util"
import { AppConfig, appConfig, type AppConfigShape, describeConfigError, InvalidConfig } from "../src/Config.js"

const providerOf = (env: Record<string, string>) => Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

/** The configuration read from `env` alone, or the ConfigError. */
const load = (env: Record<string, string>) => appConfig.pipe(Effect.either, Effect.provide(providerOf(env)))

/** The configuration as the service reads it: through the AppConfig layer. */
const loadService = (env: Record<string, string>) =>
  Effect.gen(function* () {
    return yield* AppConfig
  }).pipe(Effect.provide(AppConfig.layer), Effect.provide(providerOf(env)), Effect.either)

const loaded = (env: Record<string, string>) =>
  Effect.flatMap(load(env), (result) =>
    Either.match(result, {
      onLeft: (error) => Effect.dieMessage(`unexpected config error: ${describeConfigError(error).join("; ")}`),
      onRight: Effect.succeed
    })
  )

/** The problems reported for `env`; fails the test when the configuration is accepted. */
const problemsOf = (env: Record<string, string>) =>
  Effect.flatMap(loadService(env), (result) =>
    Either.match(result, {
      onLeft: (error) => Effect.succeed(error),
      onRight: () => Effect.dieMessage("expected the configuration to be refused")
    })
  )

const seconds = (duration: Duration.Duration) => Duration.toSeconds(duration)
const secret = (value: Option.Option<Redacted.Redacted<string>>) => Option.map(value, Redacted.value)

describe("configuration defaults", () => {
  it.effect("match PRD-002 and DESIGN.md when nothing is set", () =>
    Effect.gen(function* () {
      const config = yield* loaded({})
      expect(config).toMatchObject({
        nodeEnv: "development",
        port: 8080,
        claudeModel: "claude-sonnet-5-5",
        claudeTitleModel: "claude-haiku-5-5",
        claudeMaxTokens: 4096,
        contextMessageLimit: 20,
        claudeBaseUrl: "https://api.anthropic.com",
        dataDir: ".data",
        claudeCacheTtl: "5m"
      } satisfies Partial<AppConfigShape>)
      expect(config.logLevel).toBe(LogLevel.Info)
      expect(seconds(config.wsPingInterval)).toBe(30)
      expect(seconds(config.wsPongTimeout)).toBe(60)
      expect(seconds(config.shutdownGrace)).toBe(25)
      // `*`: any origin, represented as no restriction.
      expect(config.corsOrigins).toEqual([])
      // Neither secret is required outside production: embedded database, demo model.
      expect(Option.isNone(config.databaseUrl)).toBe(true)
      expect(Option.isNone(config.claudeApiKey)).toBe(true)
    }))

  it.effect("reads every PRD variable under its PRD name", () =>
    Effect.gen(function* () {
      const config = yield* loaded({
        PORT: "9090",
        DATABASE_URL: "postgres://user:pass@db:5432/gochat",
        CLAUDE_API_KEY: "sk-ant-prd",
        CLAUDE_MODEL: "claude-test-model",
        CLAUDE_MAX_TOKENS: "1024",
        CONTEXT_MESSAGE_LIMIT: "8",
        LOG_LEVEL: "debug",
        CORS_ORIGINS: "http://a.test, http://b.test",
        WS_PING_INTERVAL: "15",
        WS_PONG_TIMEOUT: "45",
        SHUTDOWN_GRACE_SECONDS: "3",
        CLAUDE_TITLE_MODEL: "claude-title-test"
      })
      expect(config).toMatchObject({
        port: 9090,
        claudeModel: "claude-test-model",
        claudeTitleModel: "claude-title-test",
        claudeMaxTokens: 1024,
        contextMessageLimit: 8,
        corsOrigins: ["http://a.test", "http://b.test"]
      })
      expect(secret(config.databaseUrl)).toEqual(Option.some("postgres://user:pass@db:5432/gochat"))
      expect(secret(config.claudeApiKey)).toEqual(Option.some("sk-ant-prd"))
      expect(config.logLevel).toBe(LogLevel.Debug)
      expect([seconds(config.wsPingInterval), seconds(config.wsPongTimeout), seconds(config.shutdownGrace)]).toEqual([15, 45, 3])
    }))

  it.effect("CORS_ORIGINS=* allows any origin", () =>
    Effect.gen(function* () {
      expect((yield* loaded({ CORS_ORIGINS: "*" })).corsOrigins).toEqual([])
    }))
})

describe("LOG_LEVEL", () => {
  it.effect("accepts the PRD levels debug, info, warn and error, in any case", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [string, LogLevel.LogLevel]> = [
        ["debug", LogLevel.Debug],
        ["info", LogLevel.Info],
        ["warn", LogLevel.Warning],
        ["error", LogLevel.Error],
        ["DEBUG", LogLevel.Debug],
        ["Warn", LogLevel.Warning]
      ]
      for (const [raw, level] of cases) expect((yield* loaded({ LOG_LEVEL: raw })).logLevel).toBe(level)
    }))

  // Exposes the same bug as "reports every bad variable together" below.
  it.effect("refuses an unknown level, naming the variable", () =>
    Effect.gen(function* () {
      const error = yield* problemsOf({ LOG_LEVEL: "verbose" })
      expect(error).toBeInstanceOf(InvalidConfig)
      expect(error.problems).toEqual([expect.stringMatching(/^LOG_LEVEL\b.*verbose/)])
    }))
})

describe("CLAUDE_CACHE_TTL", () => {
  it.effect("accepts 5m, 1h and off, in any case", () =>
    Effect.gen(function* () {
      for (const [raw, ttl] of [["5m", "5m"], ["1H", "1h"], [" off ", "off"]] as const) {
        expect((yield* loaded({ CLAUDE_CACHE_TTL: raw })).claudeCacheTtl).toBe(ttl)
      }
    }))

  it.effect("refuses any other value, naming the variable", () =>
    Effect.gen(function* () {
      for (const raw of ["10m", "true", "", "1d"]) {
        const error = yield* problemsOf({ CLAUDE_CACHE_TTL: raw })
        expect(error).toBeInstanceOf(InvalidConfig)
        expect(error.problems).toEqual([expect.stringMatching(/^CLAUDE_CACHE_TTL\b.*5m, 1h, off/)])
      }
    }))
})

describe("invalid configuration", () => {
  // Exposes a bug in src (see the report): `Config.validate`/`mapOrFail` applied after
  // `Config.withDefault` loses the variable's name, so range errors read ": Expected a
  // positive integer", and identical lines for different variables are merged into one.
  it.effect("reports every bad variable together, in one error, each line naming its variable", () =>
    Effect.gen(function* () {
      const bad = {
        PORT: "eighty",
        CLAUDE_MAX_TOKENS: "0",
        CONTEXT_MESSAGE_LIMIT: "-3",
        LOG_LEVEL: "chatty",
        WS_PING_INTERVAL: "soon",
        WS_PONG_TIMEOUT: "1.5",
        SHUTDOWN_GRACE_SECONDS: "0",
        CLAUDE_BASE_URL: "ftp://example.test",
        NODE_ENV: "staging",
        MAX_BODY_BYTES: "lots",
        CLAUDE_MAX_RETRIES: "11"
      }
      const error = yield* problemsOf(bad)
      expect(error).toBeInstanceOf(InvalidConfig)
      for (const name of Object.keys(bad)) {
        expect(error.problems.filter((line) => line.startsWith(`${name}:`)), `a problem line for ${name}`).toHaveLength(1)
      }
      expect(error.problems).toHaveLength(Object.keys(bad).length)
      // The message carries them all, for the one startup log line.
      for (const name of Object.keys(bad)) expect(error.message).toContain(name)
    }))

  it.effect("a valid variable next to invalid ones is not reported", () =>
    Effect.gen(function* () {
      const error = yield* problemsOf({ PORT: "8081", CLAUDE_MAX_TOKENS: "many" })
      expect(error.problems).toEqual([expect.stringMatching(/^CLAUDE_MAX_TOKENS:/)])
    }))

  // Exposes the same bug: both lines come out as ": Expected a port from 0 to 65535", merged into one.
  it.effect("refuses ports out of range, naming each variable", () =>
    Effect.gen(function* () {
      const error = yield* problemsOf({ PORT: "70000", EMBEDDED_PG_PORT: "-1" })
      expect(error.problems).toEqual(
        expect.arrayContaining([expect.stringMatching(/^PORT:/), expect.stringMatching(/^EMBEDDED_PG_PORT:/)])
      )
    }))
})

describe("NODE_ENV=production", () => {
  it.effect("requires DATABASE_URL and CLAUDE_API_KEY, reporting both at once", () =>
    Effect.gen(function* () {
      const error = yield* problemsOf({ NODE_ENV: "production" })
      expect(error.problems).toHaveLength(2)
      expect(error.problems).toEqual(
        expect.arrayContaining([expect.stringMatching(/^DATABASE_URL:/), expect.stringMatching(/^CLAUDE_API_KEY:/)])
      )
      expect(error.message).toMatch(/DATABASE_URL.*CLAUDE_API_KEY|CLAUDE_API_KEY.*DATABASE_URL/)
    }))

  it.effect("counts empty values as missing (as docker-compose passes unset variables)", () =>
    Effect.gen(function* () {
      const error = yield* problemsOf({ NODE_ENV: "production", DATABASE_URL: "", CLAUDE_API_KEY: "" })
      expect(error.problems).toEqual(
        expect.arrayContaining([expect.stringMatching(/^DATABASE_URL:/), expect.stringMatching(/^CLAUDE_API_KEY:/)])
      )
    }))

  it.effect("starts with both set, or with ANTHROPIC_API_KEY in place of CLAUDE_API_KEY", () =>
    Effect.gen(function* () {
      const withClaude = yield* loaded({ NODE_ENV: "production", DATABASE_URL: "postgres://db/x", CLAUDE_API_KEY: "sk-ant-1" })
      expect(withClaude.nodeEnv).toBe("production")
      const withAnthropic = yield* loaded({ NODE_ENV: "production", DATABASE_URL: "postgres://db/x", ANTHROPIC_API_KEY: "sk-ant-2" })
      expect(secret(withAnthropic.claudeApiKey)).toEqual(Option.some("sk-ant-2"))
    }))
})

describe("the API key", () => {
  it.effect("falls back to ANTHROPIC_API_KEY when CLAUDE_API_KEY is absent or empty", () =>
    Effect.gen(function* () {
      expect(secret((yield* loaded({ ANTHROPIC_API_KEY: "sk-ant-conventional" })).claudeApiKey)).toEqual(
        Option.some("sk-ant-conventional")
      )
      expect(secret((yield* loaded({ CLAUDE_API_KEY: "", ANTHROPIC_API_KEY: "sk-ant-conventional" })).claudeApiKey)).toEqual(
        Option.some("sk-ant-conventional")
      )
    }))

  it.effect("prefers CLAUDE_API_KEY when both are set", () =>
    Effect.gen(function* () {
      const config = yield* loaded({ CLAUDE_API_KEY: "sk-ant-primary", ANTHROPIC_API_KEY: "sk-ant-conventional" })
      expect(secret(config.claudeApiKey)).toEqual(Option.some("sk-ant-primary"))
    }))

  it.effect("is held as Redacted: printing or serialising the configuration never reveals it or the database password", () =>
    Effect.gen(function* () {
      const apiKey = "sk-ant-test-SECRET-abc123"
      const password = "db-secret-pass-123"
      const config = yield* loaded({ CLAUDE_API_KEY: apiKey, DATABASE_URL: `postgres://app:${password}@db:5432/gochat` })
      expect(Option.isSome(config.claudeApiKey) && Redacted.isRedacted(config.claudeApiKey.value)).toBe(true)
      expect(Option.isSome(config.databaseUrl) && Redacted.isRedacted(config.databaseUrl.value)).toBe(true)
      const renderings = [
        String(config),
        JSON.stringify(config),
        inspect(config, { depth: 10 }),
        String(config.claudeApiKey),
        JSON.stringify(config.claudeApiKey),
        inspect(config.databaseUrl, { depth: 10 }),
        `${Option.getOrThrow(config.claudeApiKey)}`
      ]
      for (const text of renderings) {
        expect(text).not.toContain(apiKey)
        expect(text).not.toContain(password)
      }
      // The value is still there for the code that needs it.
      expect(secret(config.claudeApiKey)).toEqual(Option.some(apiKey))
    }))

  it.effect("never appears in a configuration error", () =>
    Effect.gen(function* () {
      const error = yield* problemsOf({
        NODE_ENV: "production",
        CLAUDE_API_KEY: "sk-ant-test-SECRET-abc123",
        DATABASE_URL: "postgres://app:db-secret-pass-123@db/gochat",
        PORT: "nope"
      })
      expect(error.problems).toEqual([expect.stringMatching(/^PORT:/)])
      for (const text of [error.message, JSON.stringify(error), inspect(error, { depth: 10 })]) {
        expect(text).not.toContain("sk-ant-test-SECRET-abc123")
        expect(text).not.toContain("db-secret-pass-123")
      }
    }))
})
