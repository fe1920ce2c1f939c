import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import { GoChatApi } from "../http/Api.js"

export interface RestClientOptions {
  /** The service's base URL, e.g. `http://127.0.0.1:3000` (in a page: `location.origin`). */
  readonly baseUrl: string
  /** The AUTH_TOKEN, sent as `Authorization: Bearer …`; a function is asked at every request. */
  readonly token?: string | undefined | (() => string | undefined)
}

/**
 * The REST API typed from the service's own `HttpApi` definition: `client.projects.list()`,
 * `client.projects.get({ path: { id } })`, … Errors are the API's typed errors (each with its
 * `code`, e.g. `ProjectNotFound` → `PROJECT_NOT_FOUND`) or the platform's HTTP client errors.
 */
export const restClient = (options: RestClientOptions) =>
  HttpApiClient.make(GoChatApi, {
    baseUrl: options.baseUrl,
    transformClient: HttpClient.mapRequest((request) => {
      const token = typeof options.token === "function" ? options.token() : options.token
      return token === undefined || token === "" ? request : HttpClientRequest.bearerToken(request, token)
    })
  })

export type RestClient = Effect.Effect.Success<ReturnType<typeof restClient>>

/** `restClient` on the platform's `fetch` (browsers, Node ≥ 18): no other layer needed. */
export const fetchRestClient = (options: RestClientOptions): Effect.Effect<RestClient> =>
  restClient(options).pipe(Effect.provide(FetchHttpClient.layer))
