/**
 * A local fake of the Anthropic Messages API (`POST /v1/messages`) for tests and benchmarks.
 *
 * It listens on 127.0.0.1 only, speaks the same wire format as the real API (SSE event
 * sequence, JSON Message, error bodies, `request-id` header), validates requests the way
 * the real API does, and answers each request with a scripted {@link FakeReply}.
 *
 * Run directly for benchmarks:
 *   tsx test/support/FakeAnthropic.ts --port 0 --chunks 250 --chunk-delay-ms 40 [--timestamp-chunks]
 * prints `{"url":"http://127.0.0.1:PORT"}` on stdout and exits on SIGTERM/SIGINT.
 */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { Effect } from "effect";

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

export type ApiErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "request_too_large"
  | "rate_limit_error"
  | "api_error"
  | "overloaded_error";

export type FakeStopReason = "end_turn" | "max_tokens";

/** Options shared by every reply that streams text chunks. */
export interface ChunkScript {
  /** Text deltas, one `content_block_delta` event each (joined for a non-streaming request). */
  readonly chunks: ReadonlyArray<string>;
  /** Delay before each chunk. Default 0. */
  readonly chunkDelayMs?: number;
  /**
   * Prefix each chunk with its send time, `⟦t=<ms>⟧`, where `<ms>` is
   * `performance.timeOrigin + performance.now()` with 3 decimals (an epoch-ms value that is
   * comparable across processes on one host). Strip with {@link TIMESTAMP_MARKER}.
   */
  readonly timestampChunks?: boolean;
  /** `usage.input_tokens`; default: a rough estimate from the request (chars / 4). */
  readonly inputTokens?: number;
}

export interface TextReply extends ChunkScript {
  readonly kind: "text";
  /** Default `end_turn`. */
  readonly stopReason?: FakeStopReason;
  /** `usage.output_tokens` in `message_delta`; default: number of chunks. */
  readonly outputTokens?: number;
}

export interface HttpErrorReply {
  readonly kind: "httpError";
  readonly errorType: ApiErrorType;
  /** Default: the real API's status for `errorType` (e.g. 529 for `overloaded_error`). */
  readonly status?: number;
  readonly message?: string;
  /** Sets `retry-after` (seconds; fractions are allowed and honoured by the SDK). */
  readonly retryAfterSeconds?: number;
}

/** Streams the chunks, then an SSE `event: error` and ends the response. */
export interface MidStreamErrorReply extends ChunkScript {
  readonly kind: "midStreamError";
  /** Default `overloaded_error`. */
  readonly errorType?: ApiErrorType;
  /** Default `Overloaded`. */
  readonly message?: string;
}

/** Streams the chunks, then destroys the TCP socket (no terminating chunk). */
export interface SocketResetReply extends ChunkScript {
  readonly kind: "socketReset";
}

/** Streams the chunks, then sends nothing until the client aborts or the fake closes. */
export interface StallReply extends ChunkScript {
  readonly kind: "stall";
}

/** Decides the reply from the request, e.g. to echo the context the service sent. */
export interface FunctionReply {
  readonly kind: "function";
  readonly reply: (body: MessagesRequestBody, request: RecordedRequest) => FakeReply;
}

export type FakeReply =
  | TextReply
  | HttpErrorReply
  | MidStreamErrorReply
  | SocketResetReply
  | StallReply
  | FunctionReply;

export interface FakeMessageParam {
  readonly role: "user" | "assistant";
  readonly content: string | ReadonlyArray<Readonly<Record<string, unknown>>>;
}

/** A request body that passed validation. */
export interface MessagesRequestBody {
  readonly model: string;
  readonly max_tokens: number;
  readonly messages: ReadonlyArray<FakeMessageParam>;
  readonly stream: boolean;
  /** The whole parsed body, including fields the fake does not interpret (`system`, …). */
  readonly raw: Readonly<Record<string, unknown>>;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  /** Lower-cased header names. */
  readonly headers: Readonly<Record<string, string>>;
  /** Parsed JSON body, or `undefined` if it was not valid JSON. */
  readonly body: unknown;
  /** `performance.timeOrigin + performance.now()` when the request arrived (same clock as chunk markers). */
  readonly receivedAt: number;
}

export interface FakeAnthropic {
  /** Base URL for the SDK, e.g. `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly requests: ReadonlyArray<RecordedRequest>;
  /** The next valid requests get these replies in order; then the default reply is used. */
  enqueue(...replies: ReadonlyArray<FakeReply>): void;
  setDefault(reply: FakeReply): void;
  /** SSE responses currently open. */
  readonly openStreams: number;
  /** SSE responses whose client closed the connection before the fake ended them. */
  readonly abortedStreams: number;
  /** Resolves once no SSE response is open (e.g. after the client aborted). */
  idle(): Promise<void>;
  /** Ends every open response and stops listening. */
  close(): Promise<void>;
}

export interface FakeAnthropicOptions {
  /** Default 0 (a random free port). */
  readonly port?: number;
  /** Reply used when the queue is empty. */
  readonly defaultReply?: FakeReply;
}

/** Matches one chunk send-time marker; group 1 is the epoch-ms value. */
export const TIMESTAMP_MARKER = /⟦t=(\d+\.\d{3})⟧/;

export const DEFAULT_REPLY: TextReply = {
  kind: "text",
  chunks: ["Hello", " from", " the", " fake", " Claude."],
};

// ---------------------------------------------------------------------------
// Wire helpers
// ---------------------------------------------------------------------------

const STATUS_BY_ERROR_TYPE: Readonly<Record<ApiErrorType, number>> = {
  invalid_request_error: 400,
  authentication_error: 401,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  overloaded_error: 529,
};

const randomId = (prefix: string): string => `${prefix}${randomBytes(12).toString("hex")}`;

const preciseNow = (): number => performance.timeOrigin + performance.now();

const errorBody = (type: ApiErrorType, message: string) => ({ type: "error", error: { type, message } });

const sseEvent = (event: string, data: unknown): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

const sendJson = (
  res: http.ServerResponse,
  status: number,
  body: unknown,
  extraHeaders: Readonly<Record<string, string>> = {},
): void => {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
    ...extraHeaders,
  });
  res.end(payload);
};

const sendError = (res: http.ServerResponse, reply: HttpErrorReply): void => {
  const status = reply.status ?? STATUS_BY_ERROR_TYPE[reply.errorType];
  const headers: Record<string, string> =
    reply.retryAfterSeconds === undefined ? {} : { "retry-after": String(reply.retryAfterSeconds) };
  sendJson(res, status, errorBody(reply.errorType, reply.message ?? defaultErrorMessage(reply.errorType)), headers);
};

const defaultErrorMessage = (type: ApiErrorType): string =>
  type === "overloaded_error" ? "Overloaded" : type.replace(/_/g, " ");

const flattenHeaders = (headers: http.IncomingHttpHeaders): Record<string, string> => {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return flat;
};

const readBody = async (req: http.IncomingMessage): Promise<string> => {
  const parts: Array<Buffer> = [];
  for await (const part of req) parts.push(part as Buffer);
  return Buffer.concat(parts).toString("utf8");
};

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
};

// ---------------------------------------------------------------------------
// Validation (mirrors the real API's 400 messages)
// ---------------------------------------------------------------------------

type Validated = { readonly ok: true; readonly body: MessagesRequestBody } | { readonly ok: false; readonly message: string };

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u);

/** Empty string, empty block list, or a text block with empty text: the real API rejects all of them. */
const isEmptyContent = (content: unknown): boolean => {
  if (typeof content === "string") return content.length === 0;
  if (!Array.isArray(content)) return true;
  if (content.length === 0) return true;
  return content.some((block) => isRecord(block) && block["type"] === "text" && block["text"] === "");
};

const validateMessages = (messages: unknown): string | undefined => {
  if (!Array.isArray(messages)) return "messages: Input should be a valid list";
  if (messages.length === 0) return "messages: at least one message is required";
  let previousRole: unknown = undefined;
  for (const [i, message] of messages.entries()) {
    if (!isRecord(message)) return `messages.${i}: Input should be a valid dictionary`;
    const role = message["role"];
    if (role !== "user" && role !== "assistant") return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    if (i === 0 && role !== "user") return 'messages: first message must use the "user" role';
    if (role === previousRole) {
      return `messages: roles must alternate between "user" and "assistant", but found multiple "${role}" roles in a row`;
    }
    const content = message["content"];
    if (typeof content !== "string" && !Array.isArray(content)) return `messages.${i}.content: Input should be a valid list`;
    if (isEmptyContent(content)) return `messages.${i}: all messages must have non-empty content`;
    previousRole = role;
  }
  return undefined;
};

const validateBody = (body: unknown): Validated => {
  if (!isRecord(body)) return { ok: false, message: "Request body must be a JSON object" };
  const model = body["model"];
  const maxTokens = body["max_tokens"];
  if (typeof model !== "string" || model.length === 0) return { ok: false, message: "model: Field required" };
  if (typeof maxTokens !== "number" || !Number.isInteger(maxTokens) || maxTokens < 1) {
    return { ok: false, message: "max_tokens: Field required" };
  }
  if (!("messages" in body)) return { ok: false, message: "messages: Field required" };
  const problem = validateMessages(body["messages"]);
  if (problem !== undefined) return { ok: false, message: problem };
  return {
    ok: true,
    body: {
      model,
      max_tokens: maxTokens,
      messages: body["messages"] as ReadonlyArray<FakeMessageParam>,
      stream: body["stream"] === true,
      raw: body,
    },
  };
};

/**
 * SDK 1.x sends the API key as `Authorization: Bearer <key>`, older clients as `x-api-key`:
 * the real API takes either, so the fake does too.
 */
const hasCredentials = (headers: Readonly<Record<string, string>>): boolean =>
  Boolean(headers["x-api-key"]) || /^Bearer \S+/.test(headers["authorization"] ?? "");

type Checked =
  | { readonly ok: true; readonly body: MessagesRequestBody }
  | { readonly ok: false; readonly error: HttpErrorReply };

/** The checks the real API makes before it runs the model, in its order: route, auth, body. */
const checkRequest = (request: RecordedRequest): Checked => {
  const refuse = (errorType: ApiErrorType, message: string): Checked => ({
    ok: false,
    error: { kind: "httpError", errorType, message },
  });
  if (request.method !== "POST" || request.path.split("?")[0] !== "/v1/messages") {
    return refuse("not_found_error", "Not Found");
  }
  if (!hasCredentials(request.headers)) return refuse("authentication_error", "x-api-key header is required");
  if (!request.headers["anthropic-version"]) {
    return refuse("authentication_error", "anthropic-version header is required");
  }
  const validated = validateBody(request.body);
  return validated.ok ? validated : refuse("invalid_request_error", validated.message);
};

const isAbortError = (error: unknown): boolean => error instanceof Error && error.name === "AbortError";

const estimateInputTokens = (body: MessagesRequestBody): number =>
  Math.max(1, Math.ceil(JSON.stringify(body.raw["system"] ?? "").length / 4 + JSON.stringify(body.messages).length / 4));

// ---------------------------------------------------------------------------
// Reply rendering
// ---------------------------------------------------------------------------

/** Replies that produce content, i.e. everything except `function` and `httpError`. */
type ContentReply = TextReply | MidStreamErrorReply | SocketResetReply | StallReply;

/** Per-stream state: `signal` fires when the client goes away or the fake closes. */
interface StreamContext {
  readonly res: http.ServerResponse;
  readonly signal: AbortSignal;
  /** Destroys the socket without finishing the response (not counted as a client abort). */
  readonly cut: () => void;
}

const chunkText = (script: ChunkScript, text: string): string =>
  script.timestampChunks === true ? `⟦t=${preciseNow().toFixed(3)}⟧${text}` : text;

const messageShell = (body: MessagesRequestBody, inputTokens: number) => ({
  id: randomId("msg_"),
  type: "message",
  role: "assistant",
  model: body.model,
  content: [] as Array<unknown>,
  stop_reason: null as string | null,
  stop_sequence: null,
  usage: { input_tokens: inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 },
});

/**
 * Writes and waits until the data is handed to the socket: this is backpressure for benchmarks,
 * and it makes sure a `socketReset` cut comes after the chunks. Rejects once the response closes.
 */
const write = (ctx: StreamContext, text: string): Promise<void> =>
  new Promise<void>((resolve, reject) => {
    if (ctx.signal.aborted) return reject(ctx.signal.reason);
    const onAbort = (): void => reject(ctx.signal.reason);
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    ctx.res.write(text, () => {
      ctx.signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });

const streamChunks = async (ctx: StreamContext, body: MessagesRequestBody, reply: ContentReply): Promise<void> => {
  const inputTokens = reply.inputTokens ?? estimateInputTokens(body);
  await write(ctx, sseEvent("message_start", { type: "message_start", message: messageShell(body, inputTokens) }));
  await write(
    ctx,
    sseEvent("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
  );
  await write(ctx, sseEvent("ping", { type: "ping" }));
  for (const chunk of reply.chunks) {
    if ((reply.chunkDelayMs ?? 0) > 0) await sleep(reply.chunkDelayMs, undefined, { signal: ctx.signal });
    const delta = { type: "text_delta", text: chunkText(reply, chunk) };
    await write(ctx, sseEvent("content_block_delta", { type: "content_block_delta", index: 0, delta }));
  }
};

const finishStream = async (ctx: StreamContext, reply: TextReply): Promise<void> => {
  await write(ctx, sseEvent("content_block_stop", { type: "content_block_stop", index: 0 }));
  const delta = { stop_reason: reply.stopReason ?? "end_turn", stop_sequence: null };
  const usage = { output_tokens: reply.outputTokens ?? reply.chunks.length };
  await write(ctx, sseEvent("message_delta", { type: "message_delta", delta, usage }));
  await write(ctx, sseEvent("message_stop", { type: "message_stop" }));
  ctx.res.end();
};

/** The replies that never end the answer: the connection is cut, or left open until the client gives up. */
const endWithoutAnswer = async (ctx: StreamContext, reply: SocketResetReply | StallReply): Promise<void> => {
  if (reply.kind === "socketReset") ctx.cut();
  else if (!ctx.signal.aborted) await once(ctx.signal, "abort");
};

/** Runs a content reply as SSE; resolves when the fake is done with the response. */
const runStream = async (ctx: StreamContext, body: MessagesRequestBody, reply: ContentReply): Promise<void> => {
  ctx.res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
  await streamChunks(ctx, body, reply);
  switch (reply.kind) {
    case "text":
      return finishStream(ctx, reply);
    case "midStreamError": {
      const type = reply.errorType ?? "overloaded_error";
      await write(ctx, sseEvent("error", errorBody(type, reply.message ?? defaultErrorMessage(type))));
      ctx.res.end();
      return;
    }
    case "socketReset":
    case "stall":
      return endWithoutAnswer(ctx, reply);
  }
};

/** Non-streaming request: one JSON Message (content replies without an end become errors/cuts). */
const runNonStreaming = async (ctx: StreamContext, body: MessagesRequestBody, reply: ContentReply): Promise<void> => {
  switch (reply.kind) {
    case "text": {
      // Take as long as the stream would have, so callers see a realistic latency.
      const totalDelayMs = (reply.chunkDelayMs ?? 0) * reply.chunks.length;
      if (totalDelayMs > 0) await sleep(totalDelayMs, undefined, { signal: ctx.signal });
      const message = messageShell(body, reply.inputTokens ?? estimateInputTokens(body));
      const text = reply.chunks.map((chunk) => chunkText(reply, chunk)).join("");
      sendJson(ctx.res, 200, {
        ...message,
        content: [{ type: "text", text }],
        stop_reason: reply.stopReason ?? "end_turn",
        usage: { ...message.usage, output_tokens: reply.outputTokens ?? reply.chunks.length },
      });
      return;
    }
    case "midStreamError":
      sendError(ctx.res, { kind: "httpError", errorType: reply.errorType ?? "overloaded_error", ...messageOf(reply) });
      return;
    case "socketReset":
    case "stall":
      return endWithoutAnswer(ctx, reply);
  }
};

const messageOf = (reply: MidStreamErrorReply): { readonly message?: string } =>
  reply.message === undefined ? {} : { message: reply.message };

/** Unwraps `function` replies (bounded, in case a function returns another function). */
const resolveReply = (reply: FakeReply, body: MessagesRequestBody, request: RecordedRequest): ContentReply | HttpErrorReply => {
  let current = reply;
  for (let depth = 0; current.kind === "function"; depth++) {
    if (depth > 10) return { kind: "httpError", errorType: "api_error", message: "fake: function replies nested too deep" };
    current = current.reply(body, request);
  }
  return current;
};

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

export const startFakeAnthropic = async (options: FakeAnthropicOptions = {}): Promise<FakeAnthropic> => {
  const requests: Array<RecordedRequest> = [];
  const queue: Array<FakeReply> = [];
  let defaultReply: FakeReply = options.defaultReply ?? DEFAULT_REPLY;
  let openStreams = 0;
  let abortedStreams = 0;
  let idleWaiters: Array<() => void> = [];
  // Aborted on close(): stops every running script (sleeps, stalls, drains).
  const shutdown = new AbortController();

  const streamClosed = (): void => {
    openStreams--;
    if (openStreams === 0) {
      for (const wake of idleWaiters) wake();
      idleWaiters = [];
    }
  };

  /** Tracks one response: counts it if it is SSE, and tells a client that left early from the fake's own cut. */
  const track = (res: http.ServerResponse, streaming: boolean): StreamContext => {
    const local = new AbortController();
    let endedByFake = false;
    const onShutdown = (): void => {
      endedByFake = true;
      local.abort();
    };
    shutdown.signal.addEventListener("abort", onShutdown, { once: true });
    if (streaming) openStreams++;
    res.once("close", () => {
      shutdown.signal.removeEventListener("abort", onShutdown);
      if (streaming && !res.writableEnded && !endedByFake) abortedStreams++;
      local.abort();
      if (streaming) streamClosed();
    });
    return {
      res,
      signal: local.signal,
      cut: () => {
        endedByFake = true;
        res.socket?.destroy();
      },
    };
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const receivedAt = preciseNow();
    const text = await readBody(req);
    const body = parseJson(text);
    const headers = flattenHeaders(req.headers);
    const request: RecordedRequest = { method: req.method ?? "", path: req.url ?? "", headers, body, receivedAt };
    requests.push(request);
    res.setHeader("request-id", randomId("req_"));

    const checked = checkRequest(request);
    if (!checked.ok) {
      sendError(res, checked.error);
      return;
    }

    const reply = resolveReply(queue.shift() ?? defaultReply, checked.body, request);
    if (reply.kind === "httpError") {
      sendError(res, reply);
      return;
    }
    const ctx = track(res, checked.body.stream);
    if (checked.body.stream) await runStream(ctx, checked.body, reply);
    else await runNonStreaming(ctx, checked.body, reply);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      // Aborts (client left / fake closing) are expected; anything else is a bug in a script.
      if (isAbortError(error)) return;
      if (!res.headersSent) {
        sendError(res, { kind: "httpError", errorType: "api_error", message: `fake: ${String(error)}` });
      } else {
        res.destroy();
      }
    });
  });

  server.listen(options.port ?? 0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    enqueue: (...replies) => {
      queue.push(...replies);
    },
    setDefault: (reply) => {
      defaultReply = reply;
    },
    get openStreams() {
      return openStreams;
    },
    get abortedStreams() {
      return abortedStreams;
    },
    idle: () => (openStreams === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve))),
    close: async () => {
      shutdown.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
};

/** Scoped fake: started on acquire, closed when the scope closes. */
export const FakeAnthropicScoped = Effect.acquireRelease(
  Effect.promise(() => startFakeAnthropic()),
  (fake) => Effect.promise(() => fake.close()),
);

// ---------------------------------------------------------------------------
// CLI (benchmarks)
// ---------------------------------------------------------------------------

const runCli = async (): Promise<void> => {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: "0" },
      chunks: { type: "string", default: "100" },
      "chunk-delay-ms": { type: "string", default: "0" },
      "chunk-text": { type: "string", default: "token " },
      "timestamp-chunks": { type: "boolean", default: false },
    },
  });
  const count = Number(values.chunks);
  const fake = await startFakeAnthropic({
    port: Number(values.port),
    defaultReply: {
      kind: "text",
      chunks: Array.from({ length: count }, () => values["chunk-text"]),
      chunkDelayMs: Number(values["chunk-delay-ms"]),
      timestampChunks: values["timestamp-chunks"],
    },
  });
  process.stdout.write(`${JSON.stringify({ url: fake.url })}\n`);
  const stop = (): void => {
    void fake.close().then(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
};

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) void runCli();
