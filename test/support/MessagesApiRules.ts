/**
 * The checks the real Messages API makes on `POST /v1/messages` before it runs a model, in
 * its order (route, credentials, version, body, model), with its status codes, error types
 * and messages. Shared by the fake servers (FakeAnthropic, SteppedAnthropic), so that every
 * request the service makes in any test is held to the same rules as in production.
 */
import { randomBytes } from "node:crypto"
import type * as http from "node:http"

export type ApiErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "request_too_large"
  | "rate_limit_error"
  | "api_error"
  | "overloaded_error"

export const STATUS_BY_ERROR_TYPE: Readonly<Record<ApiErrorType, number>> = {
  invalid_request_error: 400,
  authentication_error: 401,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  overloaded_error: 529
}

/**
 * The model names the fakes accept; any other is a 404 `not_found_error`, as with the real
 * API. The service's defaults (CLAUDE_MODEL, CLAUDE_TITLE_MODEL) and the names the tests
 * configure. A test that configures a new model name adds it here.
 */
export const KNOWN_MODELS: ReadonlySet<string> = new Set([
  "claude-sonnet-5-5",
  "claude-haiku-5-5",
  "claude-test-sonnet",
  "claude-test-haiku",
  "claude-test-model"
])

/** The API versions the fakes know (the SDK's own, and the classic one); the real API refuses unknown ones. */
export const API_VERSIONS: ReadonlySet<string> = new Set(["2023-06-01", "2026-10-21"])

/** The real API's words for a conversation that ends with the assistant. */
export const PREFILL_MESSAGE =
  "This model does not support assistant message prefill. The conversation must end with a user message."

/** Top-level request fields the Messages API knows; any other is refused ("Extra inputs are not permitted"). */
const KNOWN_FIELDS: ReadonlySet<string> = new Set([
  "model",
  "max_tokens",
  "messages",
  "system",
  "stream",
  "temperature",
  "top_p",
  "top_k",
  "stop_sequences",
  "metadata",
  "tools",
  "tool_choice",
  "thinking",
  "service_tier",
  "container",
  "mcp_servers",
  "cache_control"
])

/** `POST /v1/messages/count_tokens` takes the prompt fields only: no max_tokens, no stream. */
const COUNT_TOKENS_FIELDS: ReadonlySet<string> = new Set([
  "model",
  "messages",
  "system",
  "tools",
  "tool_choice",
  "thinking",
  "mcp_servers",
  "cache_control"
])

/** The real API's limit on cache breakpoints in one request (the top-level one included). */
export const MAX_CACHE_BREAKPOINTS = 4

export interface MessageParam {
  readonly role: "user" | "assistant"
  readonly content: string | ReadonlyArray<Readonly<Record<string, unknown>>>
}

/** A request body that passed validation. */
export interface MessagesRequestBody {
  /** `messages` (`POST /v1/messages`) or `count_tokens` (`POST /v1/messages/count_tokens`). */
  readonly endpoint: "messages" | "count_tokens"
  readonly model: string
  readonly max_tokens: number
  readonly messages: ReadonlyArray<MessageParam>
  readonly stream: boolean
  /** The whole parsed body, including fields the fakes do not interpret (`system`, …). */
  readonly raw: Readonly<Record<string, unknown>>
}

export interface ApiRefusal {
  readonly errorType: ApiErrorType
  readonly message: string
}

export type Checked =
  | { readonly ok: true; readonly body: MessagesRequestBody }
  | { readonly ok: false; readonly refusal: ApiRefusal }

/** What a fake saw of one request, enough to check it. */
export interface RequestShape {
  readonly method: string
  readonly path: string
  /** Lower-cased header names. */
  readonly headers: Readonly<Record<string, string>>
  /** Parsed JSON body, or `undefined` if it was not valid JSON. */
  readonly body: unknown
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const isBlank = (text: string) => text.trim().length === 0

/** `{"type": "ephemeral", "ttl"?: "5m" | "1h"}`, as the real API checks it. */
const cacheControlProblem = (value: unknown, path: string): string | undefined => {
  if (value === undefined || value === null) return undefined
  if (!isRecord(value)) return `${path}: Input should be a valid dictionary`
  if (value["type"] !== "ephemeral") return `${path}.type: Input should be 'ephemeral'`
  if ("ttl" in value && value["ttl"] !== "5m" && value["ttl"] !== "1h") return `${path}.ttl: Input should be '5m' or '1h'`
  const extra = Object.keys(value).find((key) => key !== "type" && key !== "ttl")
  return extra === undefined ? undefined : `${path}.${extra}: Extra inputs are not permitted`
}

/** Blocks of the system prompt and of every message that carry a `cache_control`. */
const blockBreakpoints = (body: Readonly<Record<string, unknown>>): number => {
  const blocks: Array<unknown> = []
  if (Array.isArray(body["system"])) blocks.push(...(body["system"] as Array<unknown>))
  for (const message of Array.isArray(body["messages"]) ? (body["messages"] as Array<unknown>) : []) {
    if (isRecord(message) && Array.isArray(message["content"])) blocks.push(...(message["content"] as Array<unknown>))
  }
  return blocks.filter((block) => isRecord(block) && block["cache_control"] !== undefined && block["cache_control"] !== null).length
}

/** Every `cache_control` well formed, and at most four breakpoints in all. */
const cachingProblem = (body: Readonly<Record<string, unknown>>): string | undefined => {
  const topLevel = cacheControlProblem(body["cache_control"], "cache_control")
  if (topLevel !== undefined) return topLevel
  const system = Array.isArray(body["system"]) ? (body["system"] as Array<unknown>) : []
  for (const [i, block] of system.entries()) {
    const problem = isRecord(block) ? cacheControlProblem(block["cache_control"], `system.${i}.cache_control`) : undefined
    if (problem !== undefined) return problem
  }
  const messages = Array.isArray(body["messages"]) ? (body["messages"] as Array<unknown>) : []
  for (const [i, message] of messages.entries()) {
    const content = isRecord(message) && Array.isArray(message["content"]) ? (message["content"] as Array<unknown>) : []
    for (const [j, block] of content.entries()) {
      const problem = isRecord(block) ? cacheControlProblem(block["cache_control"], `messages.${i}.content.${j}.cache_control`) : undefined
      if (problem !== undefined) return problem
    }
  }
  const found = blockBreakpoints(body) + (body["cache_control"] === undefined || body["cache_control"] === null ? 0 : 1)
  return found > MAX_CACHE_BREAKPOINTS
    ? `A maximum of ${MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found ${found}.`
    : undefined
}

/** Empty or whitespace-only text, as a string or in a text block: the real API refuses both. */
const contentProblem = (content: unknown, path: string): string | undefined => {
  if (typeof content === "string") {
    if (content.length === 0) return `${path}: all messages must have non-empty content except for the optional final assistant message`
    if (isBlank(content)) return `${path}: text content blocks must contain non-whitespace text`
    return undefined
  }
  if (!Array.isArray(content)) return `${path}.content: Input should be a valid list`
  if (content.length === 0) return `${path}: all messages must have non-empty content except for the optional final assistant message`
  for (const [j, block] of content.entries()) {
    if (!isRecord(block) || typeof block["type"] !== "string") return `${path}.content.${j}: Input should be a valid dictionary`
    if (block["type"] === "text") {
      const text = block["text"]
      if (typeof text !== "string") return `${path}.content.${j}.text: Field required`
      if (text.length === 0) return `${path}.content.${j}.text: text content blocks must be non-empty`
      if (isBlank(text)) return "messages: text content blocks must contain non-whitespace text"
    }
  }
  return undefined
}

const validateMessages = (messages: unknown): string | undefined => {
  if (!Array.isArray(messages)) return "messages: Input should be a valid list"
  if (messages.length === 0) return "messages: at least one message is required"
  let previousRole: unknown = undefined
  for (const [i, message] of messages.entries()) {
    if (!isRecord(message)) return `messages.${i}: Input should be a valid dictionary`
    const role = message["role"]
    if (role !== "user" && role !== "assistant") return `messages.${i}.role: Input should be 'user' or 'assistant'`
    if (i === 0 && role !== "user") return "messages: first message must use the \"user\" role"
    if (role === previousRole) {
      return `messages: roles must alternate between "user" and "assistant", but found multiple "${role}" roles in a row`
    }
    const problem = contentProblem(message["content"], `messages.${i}`)
    if (problem !== undefined) return problem
    previousRole = role
  }
  if (previousRole === "assistant") return PREFILL_MESSAGE
  return undefined
}

const validateSystem = (system: unknown): string | undefined => {
  if (system === undefined || typeof system === "string") return undefined
  if (!Array.isArray(system)) return "system: Input should be a valid list"
  for (const [i, block] of system.entries()) {
    if (!isRecord(block) || block["type"] !== "text" || typeof block["text"] !== "string") {
      return `system.${i}: Input should be a valid text block`
    }
    if (isBlank(block["text"])) return "system: text content blocks must contain non-whitespace text"
  }
  return undefined
}

/**
 * SDK 1.x sends the API key as `Authorization: Bearer <key>`, older clients as `x-api-key`:
 * the real API takes either.
 */
const hasCredentials = (headers: Readonly<Record<string, string>>): boolean =>
  Boolean(headers["x-api-key"]) || /^Bearer \S+/.test(headers["authorization"] ?? "")

/** Every check, in the real API's order. */
export const checkRequest = (request: RequestShape): Checked => {
  const refuse = (errorType: ApiErrorType, message: string): Checked => ({ ok: false, refusal: { errorType, message } })
  const route = request.path.split("?")[0]
  const endpoint = route === "/v1/messages" ? "messages" : route === "/v1/messages/count_tokens" ? "count_tokens" : undefined
  if (request.method !== "POST" || endpoint === undefined) return refuse("not_found_error", "Not Found")
  if (!hasCredentials(request.headers)) return refuse("authentication_error", "x-api-key header is required")
  const version = request.headers["anthropic-version"]
  if (!version) return refuse("authentication_error", "anthropic-version header is required")
  if (!API_VERSIONS.has(version)) return refuse("invalid_request_error", `anthropic-version: invalid version ${version}`)
  const body = request.body
  if (!isRecord(body)) return refuse("invalid_request_error", "Request body must be a JSON object")
  const fields = endpoint === "messages" ? KNOWN_FIELDS : COUNT_TOKENS_FIELDS
  const extra = Object.keys(body).find((key) => !fields.has(key))
  if (extra !== undefined) return refuse("invalid_request_error", `${extra}: Extra inputs are not permitted`)
  const model = body["model"]
  const maxTokens = endpoint === "messages" ? body["max_tokens"] : 1
  if (typeof model !== "string" || model.length === 0) return refuse("invalid_request_error", "model: Field required")
  if (typeof maxTokens !== "number" || !Number.isInteger(maxTokens) || maxTokens < 1) {
    return refuse("invalid_request_error", "max_tokens: Field required")
  }
  if (!("messages" in body)) return refuse("invalid_request_error", "messages: Field required")
  if ("stream" in body && typeof body["stream"] !== "boolean") return refuse("invalid_request_error", "stream: Input should be a valid boolean")
  const problem = validateSystem(body["system"]) ?? validateMessages(body["messages"]) ?? cachingProblem(body)
  if (problem !== undefined) return refuse("invalid_request_error", problem)
  if (!KNOWN_MODELS.has(model)) return refuse("not_found_error", `model: ${model}`)
  return {
    ok: true,
    body: {
      endpoint,
      model,
      max_tokens: maxTokens,
      messages: body["messages"] as ReadonlyArray<MessageParam>,
      stream: body["stream"] === true,
      raw: body
    }
  }
}

export const randomId = (prefix: string): string => `${prefix}${randomBytes(12).toString("hex")}`

/** The real API's error body: the error, and the request id that is also in the `request-id` header. */
export const errorBody = (type: ApiErrorType, message: string, requestId: string) => ({
  type: "error",
  error: { type, message },
  request_id: requestId
})

export const sendJson = (
  res: http.ServerResponse,
  status: number,
  body: unknown,
  extraHeaders: Readonly<Record<string, string>> = {}
): void => {
  const payload = JSON.stringify(body)
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
    ...extraHeaders
  })
  res.end(payload)
}

/** Sets a fresh `request-id` header on the response and returns it. */
export const assignRequestId = (res: http.ServerResponse): string => {
  const requestId = randomId("req_")
  res.setHeader("request-id", requestId)
  return requestId
}

/** Answers with the real API's error body; `request-id` must already be set on `res`. */
export const sendRefusal = (
  res: http.ServerResponse,
  refusal: ApiRefusal,
  options: { readonly status?: number; readonly headers?: Readonly<Record<string, string>> } = {}
): void => {
  const requestId = String(res.getHeader("request-id") ?? assignRequestId(res))
  sendJson(res, options.status ?? STATUS_BY_ERROR_TYPE[refusal.errorType], errorBody(refusal.errorType, refusal.message, requestId), options.headers)
}

export const flattenHeaders = (headers: http.IncomingHttpHeaders): Record<string, string> => {
  const flat: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(", ") : value
  }
  return flat
}

export const readBody = async (req: http.IncomingMessage): Promise<string> => {
  const parts: Array<Buffer> = []
  for await (const part of req) parts.push(part as Buffer)
  return Buffer.concat(parts).toString("utf8")
}

export const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}
