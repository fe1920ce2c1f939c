import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createHash, timingSafeEqual } from "node:crypto"
import type { IncomingMessage } from "node:http"
import { AppConfig } from "../Config.js"
import { Unauthorized } from "../domain/Errors.js"
import { Authorization } from "./Authorization.js"

/** Fixed-length digests: `timingSafeEqual` then takes the same time whatever the token's length or content. */
const digest = (token: string): Buffer => createHash("sha256").update(token, "utf8").digest()

/**
 * The optional access token (AUTH_TOKEN). Unset, every request is let through (the PRD's
 * single-user MVP); set, REST requests and WebSocket handshakes must carry it.
 */
export class AccessToken extends Effect.Service<AccessToken>()("AccessToken", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const expected = Option.map(config.authToken, (token) => digest(Redacted.value(token)))
    if (Option.isNone(expected) && config.nodeEnv === "production") {
      yield* Effect.logWarning(
        "AUTH_TOKEN is not set: anyone who can reach this service can use its API and spend its Claude budget"
      )
    }
    /** Succeeds when no token is required or `given` is the token; compared in constant time. */
    const verify = (given: Option.Option<string>): Effect.Effect<void, Unauthorized> =>
      Option.match(expected, {
        onNone: () => Effect.void,
        onSome: (wanted) =>
          Option.isSome(given) && timingSafeEqual(digest(given.value), wanted) ? Effect.void : Effect.fail(new Unauthorized())
      })
    return { required: Option.isSome(expected), verify } as const
  })
}) {}

export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.map(AccessToken, (accessToken) =>
    Authorization.of({ bearer: (token) => accessToken.verify(Option.some(Redacted.value(token))) })
  )
)

const BEARER = /^Bearer\s+(\S+)\s*$/i

/** The token of an `Authorization: Bearer …` header. */
export const bearerTokenOf = (header: string | undefined): Option.Option<string> =>
  header === undefined ? Option.none() : Option.fromNullable(BEARER.exec(header)?.[1])

/**
 * Tokens given as `?token=` on a WebSocket handshake (browsers cannot set its headers).
 * Taken out of the URL as the upgrade request arrives, before anything can log or trace it.
 */
const queryTokens = new WeakMap<IncomingMessage, string>()

/** Called by the HTTP server's `upgrade` listener, before the request is routed. */
export const takeQueryToken = (request: IncomingMessage): void => {
  const url = request.url
  if (url === undefined || !url.includes("token=")) return
  const queryStart = url.indexOf("?")
  if (queryStart === -1) return
  const params = new URLSearchParams(url.slice(queryStart + 1))
  const token = params.get("token")
  if (token === null) return
  params.delete("token")
  queryTokens.set(request, token)
  const rest = params.toString()
  request.url = rest.length > 0 ? `${url.slice(0, queryStart)}?${rest}` : url.slice(0, queryStart)
}

/** The `?token=` an upgrade request carried, if any. */
export const queryTokenOf = (request: IncomingMessage): Option.Option<string> => Option.fromNullable(queryTokens.get(request))
