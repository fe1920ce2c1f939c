import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import pg from "pg"
import { BusUnavailable } from "./Bus.js"

/*
 * One `pg` connection of the bus, outside the pool: LISTEN and pg_notify both go through it, so
 * the client runs them in the order they were submitted. Its loss is reported by the client's
 * `error`/`end` events, or by `keepalive` (a half-open TCP connection raises nothing).
 */

const CONNECT_TIMEOUT = Duration.seconds(3)
const KEEPALIVE_INTERVAL = Duration.seconds(2)
const KEEPALIVE_TIMEOUT = Duration.seconds(3)
const CLOSE_WAIT = Duration.seconds(1)

/** One statement for a whole batch; `unnest` yields the rows, so the notifications, in array order. */
export const NOTIFY_ALL = "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS n(c, p)"

/** LISTEN takes no parameter; a BusChannel is [a-z0-9_] only, so quoting it is all the escaping it needs. */
export const listenStatement = (channel: string) => `LISTEN "${channel}"`
export const unlistenStatement = (channel: string) => `UNLISTEN "${channel}"`

export interface BusConnection {
  readonly client: pg.Client
  /** Resolves with the reason when the connection is gone (error, end); `keepalive` fails instead. */
  readonly lost: Promise<string>
  /** Settles when the last submitted statement has: the next one starts after it. */
  tail: Promise<unknown>
}

export interface BusConnectionOptions {
  readonly url: Redacted.Redacted<string>
  /** Shown in pg_stat_activity: how operators (and tests) find the bus's backend. */
  readonly applicationName: string
  readonly onNotification: (notification: pg.Notification) => void
  /** Called synchronously at the loss, so that nothing more is submitted to a dead client. */
  readonly onLost: (client: pg.Client) => void
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error))

const destroy = (client: pg.Client) => Effect.sync(() => client.connection.stream.destroy())

/** A polite end, bounded (a half-open connection never answers), then the socket is destroyed. */
const close = (client: pg.Client) =>
  Effect.promise(() => client.end().catch(() => undefined)).pipe(
    Effect.timeout(CLOSE_WAIT),
    Effect.ignore,
    Effect.zipRight(destroy(client))
  )

/** A connection for the length of the scope. The URL (with its password) is never logged. */
export const openConnection = (options: BusConnectionOptions) =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      let resolveLost: (reason: string) => void = () => undefined
      const lost = new Promise<string>((resolve) => (resolveLost = resolve))
      const client = new pg.Client({
        connectionString: Redacted.value(options.url),
        application_name: options.applicationName,
        connectionTimeoutMillis: Duration.toMillis(CONNECT_TIMEOUT),
        keepAlive: true
      })
      const markLost = (reason: string) => {
        options.onLost(client)
        resolveLost(reason)
      }
      // Without an `error` listener a dropped connection would crash the process.
      client.on("error", (error) => markLost(describe(error)))
      client.on("end", () => markLost("the connection ended"))
      client.on("notification", options.onNotification)
      yield* Effect.tryPromise({ try: () => client.connect(), catch: (error) => new BusUnavailable({ reason: describe(error) }) }).pipe(
        Effect.tapError(() => destroy(client))
      )
      const connection: BusConnection = { client, lost, tail: Promise.resolve() }
      return connection
    }),
    ({ client }) => close(client)
  )

/**
 * Submits a statement now, synchronously with the change it belongs to, behind the ones
 * submitted before: statements run one at a time in submission order (pg 8.23 deprecates
 * queueing a query while another runs). `settle` awaits it.
 */
export const submit = (connection: BusConnection, text: string, values?: ReadonlyArray<unknown>): Promise<unknown> => {
  const submitted = connection.tail.then(() => connection.client.query(text, values === undefined ? undefined : [...values]))
  connection.tail = submitted.catch(() => undefined)
  return submitted
}

/**
 * The end of a submitted statement. It always comes: when the connection is lost (an event, or
 * a failed keepalive after which the socket is destroyed), the client fails every statement it holds.
 */
export const settle = (submitted: Promise<unknown>) =>
  Effect.tryPromise({ try: () => submitted, catch: (error) => new BusUnavailable({ reason: describe(error) }) }).pipe(Effect.asVoid)

/** Fails when the connection is lost or a cheap query goes unanswered. */
export const keepalive = (connection: BusConnection) =>
  Effect.raceFirst(
    Effect.flatMap(Effect.promise(() => connection.lost), (reason) => new BusUnavailable({ reason })),
    Effect.sleep(KEEPALIVE_INTERVAL).pipe(
      Effect.zipRight(
        Effect.suspend(() => settle(submit(connection, "SELECT 1"))).pipe(
          Effect.timeoutFail({ duration: KEEPALIVE_TIMEOUT, onTimeout: () => new BusUnavailable({ reason: "keepalive query timed out" }) })
        )
      ),
      Effect.forever
    )
  )
