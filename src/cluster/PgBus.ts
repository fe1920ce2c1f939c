import { PgClient } from "@effect/sql-pg"
import { Effect, Either, Layer, Option, Redacted } from "effect"
import pg from "pg"
import { Bus, type BusMessageHandlers, BusUnavailable, parseChannel } from "./Bus.js"

/**
 * A minimal LISTEN/NOTIFY bus on one dedicated connection (placeholder until the full
 * `PgBus` of the bus branch: no payload splitting, no reconnect).
 */
export const PgBusLive = Layer.scoped(
  Bus,
  Effect.gen(function* () {
    const pool = yield* PgClient.PgClient
    const url = Option.getOrThrow(Option.fromNullable(pool.config.url))
    const instanceId = crypto.randomUUID().replaceAll("-", "")
    const client = new pg.Client({ connectionString: Redacted.value(url), application_name: `go-chat-bus-${instanceId}` })
    let connected = false
    client.on("error", () => {
      connected = false
    })
    yield* Effect.acquireRelease(
      Effect.promise(() => client.connect()).pipe(Effect.tap(() => Effect.sync(() => (connected = true)))),
      () => Effect.promise(() => client.end().catch(() => undefined))
    )
    const handlers = new Map<string, Set<BusMessageHandlers>>()
    client.on("notification", (notification) => {
      for (const handler of handlers.get(notification.channel) ?? []) handler.onMessage(notification.payload ?? "")
    })
    const query = (text: string, values: ReadonlyArray<string> = []) =>
      Effect.tryPromise({
        try: () => client.query(text, [...values]),
        catch: (error) => new BusUnavailable({ reason: String(error) })
      })

    const publish = (channel: string, payload: string) =>
      Either.match(parseChannel(channel), {
        onLeft: Effect.fail,
        onRight: (name) => query("SELECT pg_notify($1, $2)", [name, payload]).pipe(Effect.asVoid)
      })

    const listen = (channel: string, handler: BusMessageHandlers) =>
      Either.match(parseChannel(channel), {
        onLeft: Effect.fail,
        onRight: (name) =>
          Effect.acquireRelease(
            Effect.suspend(() => {
              const set = handlers.get(name) ?? new Set()
              handlers.set(name, set)
              set.add(handler)
              return set.size === 1 ? query(`LISTEN ${name}`).pipe(Effect.ignore) : Effect.void
            }),
            () =>
              Effect.suspend(() => {
                const set = handlers.get(name)
                set?.delete(handler)
                if (set === undefined || set.size > 0) return Effect.void
                handlers.delete(name)
                return query(`UNLISTEN ${name}`).pipe(Effect.ignore)
              })
          )
      })

    return Bus.of({
      instanceId,
      publish,
      listen,
      status: Effect.sync(() => ({ connected, listening: handlers.size, reconnects: 0 }))
    })
  })
)
