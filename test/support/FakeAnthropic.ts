/**
 * A local fake of the Anthropic Messages API (`POST /v1/messages`, and
 * `POST /v1/messages/count_tokens`) for tests and benchmarks.
 *
 * It listens on 127.0.0.1 only, speaks the same wire format as the real API (SSE event
 * sequence, JSON Message, error bodies, `request-id` header), validates requests the way
 * the real API does (`cache_control` included), emulates the prompt cache (PromptCache.ts:
 * usage reports cache reads and writes as `cache_control` asks), and answers each request
 * with a scripted {@link FakeReply}.
 *
 * Run directly for benchmarks:
 *   tsx test/support/FakeAnthropic.ts --port 0 --chunks 250 --chunk-delay-ms 40 [--timestamp-chunks]
 * prints `{"url":"http://127.0.0.1:PORT"}` on stdout and exits on SIGTERM/SIGINT.
 */
import { once } from "node:events";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { Effect } from "effect";
import {
  type ApiErrorType,
  type ApiRefusal,
  assignRequestId,
  checkRequest,
  errorBody,
  flattenHeaders,
  type MessageParam,
  type MessagesRequestBody,
  parseJson,
  randomId,
  readBody,
  sendJson,
  sendRefusal,
} from "./MessagesApiRules.js";
import { makePromptCache, type PromptCache, type PromptUsage, promptTokens } from "./PromptCache.js";

export type { ApiErrorType, MessagesRequestBody } from "./MessagesApiRules.js";
export { KNOWN_MODELS, PREFILL_MESSAGE } from "./MessagesApiRules.js";

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/** Every `stop_reason` the real API sends for a finished answer. */
export type FakeStopReason =
  | "end_turn"
  | "max_tokens"
  | "stop_sequence"
  | "refusal"
  | "pause_turn"
  | "model_context_window_exceeded";

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
  /**
   * `usage.input_tokens`. Default (with no cache numbers scripted either): the emulated
   * prompt cache's count (PromptCache.ts): the prompt's tokens at about four characters
   * each, split into uncached input, cache reads and cache writes as `cache_control` asks.
   */
  readonly inputTokens?: number;
  /**
   * Holds the answer after this many chunks (0: before the first) until `resume` settles:
   * the test decides when the rest comes, instead of racing a timer. A non-streamed
   * request is held before it is answered.
   */
  readonly pauseAfter?: number;
  /** What a paused answer waits for (see {@link gate}). */
  readonly resume?: Promise<unknown>;
  /** A `ping` event after every this many chunks, as the real API sends during long answers. Default 5. */
  readonly pingEvery?: number;
}

export interface TextReply extends ChunkScript {
  readonly kind: "text";
  /** Default `end_turn`. */
  readonly stopReason?: FakeStopReason;
  /** `stop_sequence` when the stop reason is `stop_sequence`. Default `"\n\nHuman:"`. */
  readonly stopSequence?: string;
  /** `usage.output_tokens` in `message_delta`; default: number of chunks. */
  readonly outputTokens?: number;
  /** `usage.cache_creation_input_tokens`. Default 0. */
  readonly cacheCreationInputTokens?: number;
  /** `usage.cache_read_input_tokens`. Default 0. */
  readonly cacheReadInputTokens?: number;
  /** Text deltas of a second text content block (index 1) after the first one. */
  readonly secondBlock?: ReadonlyArray<string>;
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

export type FakeMessageParam = MessageParam;

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
  /** Requests refused by the real API's checks (a service bug unless the test sent them on purpose). */
  readonly rejections: ReadonlyArray<Rejection>;
  /** The next valid requests get these replies in order; then the default reply is used. */
  enqueue(...replies: ReadonlyArray<FakeReply>): void;
  setDefault(reply: FakeReply): void;
  /**
   * What `POST /v1/messages/count_tokens` answers: by default the prompt's tokens as the
   * replies count them (input + cache read + cache creation of the same prompt).
   */
  setCountTokens(answer: (body: MessagesRequestBody) => number | HttpErrorReply): void;
  /** `count_tokens` requests answered so far (valid ones). */
  readonly countRequests: number;
  /** Prefixes held by the emulated prompt cache. */
  readonly promptCacheEntries: number;
  /** SSE responses currently open. */
  readonly openStreams: number;
  /** SSE responses whose client closed the connection before the fake ended them. */
  readonly abortedStreams: number;
  /** Resolves once no SSE response is open (e.g. after the client aborted). */
  idle(): Promise<void>;
  /** Ends every open response and stops listening. */
  close(): Promise<void>;
}

export interface Rejection {
  readonly request: RecordedRequest;
  readonly refusal: ApiRefusal;
}

export interface FakeAnthropicOptions {
  /** Default 0 (a random free port). */
  readonly port?: number;
  /** Reply used when the queue is empty. */
  readonly defaultReply?: FakeReply;
}

/** A promise the test settles when it wants a paused answer to go on. */
export interface Gate {
  readonly promise: Promise<void>;
  readonly open: () => void;
}

export const gate = (): Gate => {
  let open: () => void = () => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
};

/** Matches one chunk send-time marker; group 1 is the epoch-ms value. */
export const TIMESTAMP_MARKER = /⟦t=(\d+\.\d{3})⟧/;

export const DEFAULT_REPLY: TextReply = {
  kind: "text",
  chunks: ["Hello", " from", " the", " fake", " Claude."],
};

// ---------------------------------------------------------------------------
// Wire helpers
// ---------------------------------------------------------------------------

const preciseNow = (): number => performance.timeOrigin + performance.now();

const sseEvent = (event: string, data: unknown): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

const sendError = (res: http.ServerResponse, reply: HttpErrorReply): void => {
  const headers: Record<string, string> =
    reply.retryAfterSeconds === undefined ? {} : { "retry-after": String(reply.retryAfterSeconds) };
  const refusal: ApiRefusal = { errorType: reply.errorType, message: reply.message ?? defaultErrorMessage(reply.errorType) };
  sendRefusal(res, refusal, { ...(reply.status === undefined ? {} : { status: reply.status }), headers });
};

const defaultErrorMessage = (type: ApiErrorType): string =>
  type === "overloaded_error" ? "Overloaded" : type.replace(/_/g, " ");

const isAbortError = (error: unknown): boolean => error instanceof Error && error.name === "AbortError";

/**
 * A reply's input usage: the numbers it scripts, when it scripts any; otherwise what the
 * prompt cache makes of the request (see PromptCache.ts).
 */
const inputUsageOf = (reply: ContentReply, body: MessagesRequestBody, cache: PromptCache): PromptUsage => {
  const scripted = reply.kind === "text"
    ? reply.inputTokens ?? reply.cacheReadInputTokens ?? reply.cacheCreationInputTokens
    : reply.inputTokens;
  if (scripted === undefined) return cache.use(body);
  return {
    input_tokens: reply.inputTokens ?? promptTokens(body),
    cache_creation_input_tokens: reply.kind === "text" ? (reply.cacheCreationInputTokens ?? 0) : 0,
    cache_read_input_tokens: reply.kind === "text" ? (reply.cacheReadInputTokens ?? 0) : 0,
  };
};

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

const messageShell = (body: MessagesRequestBody, usage: PromptUsage) => ({
  id: randomId("msg_"),
  type: "message",
  role: "assistant",
  model: body.model,
  content: [] as Array<unknown>,
  stop_reason: null as string | null,
  stop_sequence: null as string | null,
  usage: { ...usage, output_tokens: 1 },
});

const stopOf = (reply: TextReply) => {
  const reason = reply.stopReason ?? "end_turn";
  return { stop_reason: reason, stop_sequence: reason === "stop_sequence" ? (reply.stopSequence ?? "\n\nHuman:") : null };
};

/** Waits (abortably) until the test releases a paused answer. */
const awaitResume = (ctx: StreamContext, resume: Promise<unknown> | undefined): Promise<void> =>
  new Promise<void>((resolve, reject) => {
    if (resume === undefined) return resolve();
    if (ctx.signal.aborted) return reject(ctx.signal.reason);
    const onAbort = (): void => reject(ctx.signal.reason);
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    void resume.then(() => {
      ctx.signal.removeEventListener("abort", onAbort);
      resolve();
    });
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

const ping = (ctx: StreamContext) => write(ctx, sseEvent("ping", { type: "ping" }));

/** One content block's deltas, with pings in between and the pause where the script asks for it. */
const streamBlock = async (
  ctx: StreamContext,
  reply: ContentReply,
  index: number,
  chunks: ReadonlyArray<string>,
  pauseAfter: number | undefined,
): Promise<void> => {
  const pingEvery = reply.pingEvery ?? 5;
  for (const [i, chunk] of chunks.entries()) {
    if (i === pauseAfter) {
      await awaitResume(ctx, reply.resume);
      // A long silence on the real API is filled with pings.
      await ping(ctx);
    }
    if ((reply.chunkDelayMs ?? 0) > 0) await sleep(reply.chunkDelayMs, undefined, { signal: ctx.signal });
    if (i > 0 && i % pingEvery === 0) await ping(ctx);
    const delta = { type: "text_delta", text: chunkText(reply, chunk) };
    await write(ctx, sseEvent("content_block_delta", { type: "content_block_delta", index, delta }));
  }
  if (pauseAfter !== undefined && pauseAfter >= chunks.length) await awaitResume(ctx, reply.resume);
};

const streamChunks = async (ctx: StreamContext, body: MessagesRequestBody, reply: ContentReply, usage: PromptUsage): Promise<void> => {
  await write(ctx, sseEvent("message_start", { type: "message_start", message: messageShell(body, usage) }));
  await write(
    ctx,
    sseEvent("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
  );
  await ping(ctx);
  await streamBlock(ctx, reply, 0, reply.chunks, reply.pauseAfter);
};

const finishStream = async (ctx: StreamContext, reply: TextReply, inputUsage: PromptUsage): Promise<void> => {
  await write(ctx, sseEvent("content_block_stop", { type: "content_block_stop", index: 0 }));
  if (reply.secondBlock !== undefined) {
    await write(
      ctx,
      sseEvent("content_block_start", { type: "content_block_start", index: 1, content_block: { type: "text", text: "" } }),
    );
    await streamBlock(ctx, reply, 1, reply.secondBlock, undefined);
    await write(ctx, sseEvent("content_block_stop", { type: "content_block_stop", index: 1 }));
  }
  const usage = {
    ...inputUsage,
    output_tokens: reply.outputTokens ?? reply.chunks.length + (reply.secondBlock?.length ?? 0),
  };
  await write(ctx, sseEvent("message_delta", { type: "message_delta", delta: stopOf(reply), usage }));
  await write(ctx, sseEvent("message_stop", { type: "message_stop" }));
  ctx.res.end();
};

/** The replies that never end the answer: the connection is cut, or left open until the client gives up. */
const endWithoutAnswer = async (ctx: StreamContext, reply: SocketResetReply | StallReply): Promise<void> => {
  if (reply.kind === "socketReset") ctx.cut();
  else if (!ctx.signal.aborted) await once(ctx.signal, "abort");
};

/** Runs a content reply as SSE; resolves when the fake is done with the response. */
const runStream = async (ctx: StreamContext, body: MessagesRequestBody, reply: ContentReply, usage: PromptUsage): Promise<void> => {
  ctx.res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
  await streamChunks(ctx, body, reply, usage);
  switch (reply.kind) {
    case "text":
      return finishStream(ctx, reply, usage);
    case "midStreamError": {
      const type = reply.errorType ?? "overloaded_error";
      const requestId = String(ctx.res.getHeader("request-id") ?? "");
      await write(ctx, sseEvent("error", errorBody(type, reply.message ?? defaultErrorMessage(type), requestId)));
      ctx.res.end();
      return;
    }
    case "socketReset":
    case "stall":
      return endWithoutAnswer(ctx, reply);
  }
};

/** Non-streaming request: one JSON Message (content replies without an end become errors/cuts). */
const runNonStreaming = async (ctx: StreamContext, body: MessagesRequestBody, reply: ContentReply, usage: PromptUsage): Promise<void> => {
  if (reply.pauseAfter !== undefined) await awaitResume(ctx, reply.resume);
  switch (reply.kind) {
    case "text": {
      // Take as long as the stream would have, so callers see a realistic latency.
      const totalDelayMs = (reply.chunkDelayMs ?? 0) * reply.chunks.length;
      if (totalDelayMs > 0) await sleep(totalDelayMs, undefined, { signal: ctx.signal });
      const message = messageShell(body, usage);
      const text = reply.chunks.map((chunk) => chunkText(reply, chunk)).join("");
      const second = reply.secondBlock === undefined ? [] : [{ type: "text", text: reply.secondBlock.join("") }];
      sendJson(ctx.res, 200, {
        ...message,
        content: [{ type: "text", text }, ...second],
        ...stopOf(reply),
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
  const rejections: Array<Rejection> = [];
  const queue: Array<FakeReply> = [];
  let defaultReply: FakeReply = options.defaultReply ?? DEFAULT_REPLY;
  const promptCache = makePromptCache();
  let countTokens: (body: MessagesRequestBody) => number | HttpErrorReply = promptTokens;
  let countRequests = 0;
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
    assignRequestId(res);

    const checked = checkRequest(request);
    if (!checked.ok) {
      rejections.push({ request, refusal: checked.refusal });
      sendRefusal(res, checked.refusal);
      return;
    }

    if (checked.body.endpoint === "count_tokens") {
      countRequests++;
      const counted = countTokens(checked.body);
      if (typeof counted === "number") sendJson(res, 200, { input_tokens: counted });
      else sendError(res, counted);
      return;
    }

    const reply = resolveReply(queue.shift() ?? defaultReply, checked.body, request);
    if (reply.kind === "httpError") {
      sendError(res, reply);
      return;
    }
    const usage = inputUsageOf(reply, checked.body, promptCache);
    const ctx = track(res, checked.body.stream);
    if (checked.body.stream) await runStream(ctx, checked.body, reply, usage);
    else await runNonStreaming(ctx, checked.body, reply, usage);
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
    rejections,
    enqueue: (...replies) => {
      queue.push(...replies);
    },
    setDefault: (reply) => {
      defaultReply = reply;
    },
    setCountTokens: (answer) => {
      countTokens = answer;
    },
    get countRequests() {
      return countRequests;
    },
    get promptCacheEntries() {
      return promptCache.size();
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

/** Fails (as a defect) if the fake refused any request: every request the service makes must be valid. */
export const expectNoRejections = (rejections: ReadonlyArray<Rejection>): Effect.Effect<void> =>
  rejections.length === 0
    ? Effect.void
    : Effect.dieMessage(
        `the fake Messages API refused ${rejections.length} request(s) the real API would refuse too: ${JSON.stringify(
          rejections.map((r) => ({ refusal: r.refusal, body: r.request.body })),
        ).slice(0, 2000)}`,
      );

/** Scoped fake: started on acquire; closed when the scope closes, failing the test if it refused a request. */
export const FakeAnthropicScoped = Effect.acquireRelease(
  Effect.promise(() => startFakeAnthropic()),
  (fake) => Effect.zipRight(Effect.promise(() => fake.close()), expectNoRejections(fake.rejections)),
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
      // Benchmarks compare against earlier runs: only the ping after content_block_start, as before.
      pingEvery: Number.MAX_SAFE_INTEGER,
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
