import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import { DatabaseUnavailable } from "../domain/Errors.js"

const CONNECTION_ERRNOS = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN"])

/** SQLSTATE class 08 (connection exception) and 57P0x (server shutting down / starting). */
const isConnectionSqlState = (code: string) => code.startsWith("08") || /^57P0[1-4]$/.test(code)

const causeOf = (error: unknown): { readonly code?: unknown; readonly message?: unknown } =>
  typeof error === "object" && error !== null ? error : {}

const isSqlError = (error: unknown): error is SqlError => Predicate.isTagged(error, "SqlError")

/** A PostgreSQL error of SQLSTATE `code`. */
const hasSqlState = (code: string) => (error: unknown): boolean => isSqlError(error) && causeOf(error.cause).code === code
/** 23505: a unique index refused the row. */
export const isUniqueViolation = hasSqlState("23505")
/** 23503: the row refers to one that does not exist (a deleted project). */
export const isForeignKeyViolation = hasSqlState("23503")

/** True when the database could not be reached, as opposed to a query that is wrong. */
export const isConnectionFailure = (error: SqlError): boolean => {
  const cause = causeOf(error.cause)
  if (typeof cause.code === "string" && (CONNECTION_ERRNOS.has(cause.code) || isConnectionSqlState(cause.code))) {
    return true
  }
  const message = typeof cause.message === "string" ? cause.message : ""
  return /connect|connection terminated|timeout exceeded|Connection ended/i.test(message)
}

/**
 * True when the statement cannot have reached the server: no pooled connection came within
 * the pool's wait (a busy pool, under a burst), or none could be opened. Sending it again
 * cannot run it twice.
 */
export const neverSent = (error: unknown): boolean => {
  if (!isSqlError(error)) return false
  const cause = causeOf(error.cause)
  const message = typeof cause.message === "string" ? cause.message : ""
  return cause.code === "ECONNREFUSED" || /^timeout exceeded when trying to connect$|due to connection timeout/.test(message)
}

/**
 * Repository boundary: an unreachable database is a typed, retryable `DatabaseUnavailable`;
 * any other failure (bad SQL, a row that does not decode) is a bug and becomes a defect (500, logged).
 */
export const orUnavailable = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, DatabaseUnavailable, R> =>
  Effect.catchAll(effect, (error) =>
    isSqlError(error) && isConnectionFailure(error)
      ? Effect.fail(new DatabaseUnavailable({ cause: error }))
      : Effect.die(error)
  )
