import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"

/*
 * The bus carries live events between the instances of the service: every listener of a channel,
 * on every instance (this one included), gets every payload published on it, in the order each
 * instance published them. It is best effort by nature (a notification sent while a listener's
 * connection is down is gone), so a listener is told when that may have happened (`onReconnect`)
 * and catches up from the database. The live layer is `PgBus` (PostgreSQL LISTEN/NOTIFY).
 */

export interface BusMessageHandlers {
  /**
   * Called synchronously, in publish order per publishing instance, with each complete payload.
   * It must not block; a throw is logged and does not reach the other listeners.
   */
  readonly onMessage: (payload: string) => void
  /**
   * Called after the bus connection was lost and re-established: notifications may have been
   * missed, so the listener must catch up from the database.
   */
  readonly onReconnect?: () => void
}

export interface BusStatus {
  readonly connected: boolean
  /** Channels this instance listens on. */
  readonly listening: number
  /** Times the connection was re-established since the start. */
  readonly reconnects: number
}

/** The bus connection is down and did not come back within a short wait; publishing again later can succeed. */
export class BusUnavailable extends Schema.TaggedError<BusUnavailable>()("BusUnavailable", {
  reason: Schema.String
}) {
  static readonly code = "BUS_UNAVAILABLE"
  readonly code = BusUnavailable.code
  override get message() {
    return `the event bus is unavailable: ${this.reason}`
  }
}

/** A channel name outside the safe set (see `BusChannel`): a bug of the caller, never sent to PostgreSQL. */
export class InvalidChannel extends Schema.TaggedError<InvalidChannel>()("InvalidChannel", {
  channel: Schema.String
}) {
  static readonly code = "INVALID_CHANNEL"
  readonly code = InvalidChannel.code
  override get message() {
    return `invalid bus channel ${JSON.stringify(this.channel.slice(0, 80))}: expected 1 to 63 of a-z, 0-9 and _, not starting with a digit`
  }
}

/**
 * A channel is a PostgreSQL identifier (at most 63 bytes). Only lower-case ASCII letters, digits
 * and `_` are allowed, so a name is the same quoted or not and needs no escaping; derive names
 * from ids by such a rule, e.g. `project_` + the UUID's hex digits.
 */
export const BusChannel = Schema.String.pipe(Schema.pattern(/^[a-z_][a-z0-9_]{0,62}$/), Schema.brand("BusChannel"))
export type BusChannel = typeof BusChannel.Type

const decodeChannel = Schema.decodeEither(BusChannel)

export const parseChannel = (channel: string): Either.Either<BusChannel, InvalidChannel> =>
  Either.mapLeft(decodeChannel(channel), () => new InvalidChannel({ channel }))

export interface BusShape {
  /** This instance's id on the bus (also in the connection's `application_name`, `go-chat-bus-<id>`). */
  readonly instanceId: string
  /** Delivers payload (any length, any text) to every listener of channel on every instance, this one included. */
  readonly publish: (channel: string, payload: string) => Effect.Effect<void, BusUnavailable | InvalidChannel>
  /**
   * Listens until the scope closes. Listeners are counted per channel: two listeners of one
   * channel are independent, the end of one does not silence the other. Once this returns, the
   * channel is listened on (or will be at the next reconnect, followed by `onReconnect`).
   */
  readonly listen: (channel: string, handlers: BusMessageHandlers) => Effect.Effect<void, InvalidChannel, Scope.Scope>
  readonly status: Effect.Effect<BusStatus>
}

export class Bus extends Context.Tag("Bus")<Bus, BusShape>() {}
