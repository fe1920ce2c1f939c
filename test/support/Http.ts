/**
 * Small HTTP client helpers for tests: every call is bounded by a liveness timeout, and
 * answers come back with status, headers, raw text and parsed JSON.
 */
import { Effect } from "effect"
import * as Http from "node:http"

/** Generous upper bound so that a hung server fails the test instead of the run. */
export const LIVENESS_TIMEOUT_MS = 20_000

export interface HttpAnswer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  /** The parsed body; `undefined` when it is empty or not JSON. */
  readonly json: unknown
}

const parseJson = (text: string): unknown => {
  if (text === "") return undefined
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

export const fetchAnswer = async (url: string, init: RequestInit = {}): Promise<HttpAnswer> => {
  const response = await fetch(url, { ...init, signal: init.signal ?? AbortSignal.timeout(LIVENESS_TIMEOUT_MS) })
  const text = await response.text()
  return { status: response.status, headers: response.headers, text, json: parseJson(text) }
}

/** `fetch` as an Effect; a network failure or timeout fails the test as a defect. */
export const request = (url: string, init: RequestInit = {}): Effect.Effect<HttpAnswer> =>
  Effect.promise(() => fetchAnswer(url, init))

export const get = (url: string, headers: Record<string, string> = {}) => request(url, { headers })

/** Sends `body` as JSON (a string is sent verbatim, for malformed bodies). */
export const sendJson = (method: string, url: string, body: unknown) =>
  request(url, {
    method,
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body)
  })

export interface RawAnswer {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly text: string
}

/**
 * A request through `node:http`, for what `fetch` cannot do: a chunked body with no
 * content-length, or forbidden-looking headers such as `Origin`. Chunks are written one by
 * one; the answer may come before the body is finished (a server refusing it early).
 */
export const rawRequest = (
  url: string,
  options: {
    readonly method?: string
    readonly headers?: Record<string, string>
    readonly chunks?: ReadonlyArray<string>
  } = {}
): Effect.Effect<RawAnswer> =>
  Effect.async<RawAnswer>((resume) => {
    let settled = false
    const settle = (effect: Effect.Effect<RawAnswer>) => {
      if (settled) return
      settled = true
      resume(effect)
    }
    const req = Http.request(url, {
      method: options.method ?? "GET",
      headers: options.headers ?? {},
      signal: AbortSignal.timeout(LIVENESS_TIMEOUT_MS)
    })
    req.on("response", (res) => {
      const parts: Array<Buffer> = []
      res.on("data", (part: Buffer) => parts.push(part))
      res.on("end", () =>
        settle(
          Effect.succeed({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString("utf8") })
        )
      )
      res.on("error", (error) => settle(Effect.die(error)))
    })
    // A server that answers before reading the whole body may reset the upload: only an
    // error before any answer is a failure.
    req.on("error", (error) => settle(Effect.die(error)))
    const chunks = options.chunks ?? []
    if (chunks.length > 0) req.setHeader("transfer-encoding", "chunked")
    for (const chunk of chunks) req.write(chunk)
    req.end()
  })
