import Anthropic from "@anthropic-ai/sdk";
import type { MessageStream } from "@anthropic-ai/sdk/lib/MessageStream";
import { afterEach, beforeEach, describe, expect, it } from "@effect/vitest";
import { Effect } from "effect";
import {
  FakeAnthropicScoped,
  type FakeStopReason,
  gate,
  PREFILL_MESSAGE,
  TIMESTAMP_MARKER,
  startFakeAnthropic,
  type FakeAnthropic,
  type FakeMessageParam,
} from "./support/FakeAnthropic.js";

const MODEL = "claude-test-model";

const clientFor = (fake: FakeAnthropic, maxRetries = 0): Anthropic =>
  new Anthropic({ apiKey: "test-key", baseURL: fake.url, maxRetries });

const params = (messages: Array<FakeMessageParam> = [{ role: "user", content: "Hello" }]) => ({
  model: MODEL,
  max_tokens: 256,
  messages: messages as Array<Anthropic.MessageParam>,
});

/** Starts a stream and collects its text deltas; `firstTexts(n)` resolves after n deltas. */
const collectText = (stream: MessageStream) => {
  const texts: Array<string> = [];
  const waiters: Array<{ readonly n: number; readonly resolve: () => void }> = [];
  stream.on("text", (delta) => {
    texts.push(delta);
    for (const waiter of waiters) if (texts.length >= waiter.n) waiter.resolve();
  });
  const firstTexts = (n: number): Promise<void> =>
    texts.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve }));
  return { texts, firstTexts };
};

describe("FakeAnthropic with the real SDK", () => {
  let fake: FakeAnthropic;
  beforeEach(async () => {
    fake = await startFakeAnthropic();
  });
  afterEach(async () => {
    await fake.close();
  });

  it("streams text deltas in order with the real SSE sequence", async () => {
    fake.enqueue({ kind: "text", chunks: ["One", " two", " three"], chunkDelayMs: 1, inputTokens: 12, outputTokens: 3 });
    const stream = clientFor(fake).messages.stream(params());
    const events: Array<string> = [];
    stream.on("streamEvent", (event) => events.push(event.type));
    const { texts } = collectText(stream);

    const message = await stream.finalMessage();

    expect(texts).toEqual(["One", " two", " three"]);
    expect(events).toEqual([
      "message_start",
      "content_block_start",
      "content_block_delta",
      "content_block_delta",
      "content_block_delta",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    expect(message.model).toBe(MODEL);
    expect(message.content).toEqual([{ type: "text", text: "One two three" }]);
    expect(message.stop_reason).toBe("end_turn");
    expect(message.usage.input_tokens).toBe(12);
    expect(message.usage.output_tokens).toBe(3);
    expect(stream.request_id).toMatch(/^req_/);
  });

  it("records the request with headers and parsed body", async () => {
    await clientFor(fake).messages.stream(params()).done();

    expect(fake.requests).toHaveLength(1);
    const [request] = fake.requests;
    expect(request?.method).toBe("POST");
    expect(request?.path).toBe("/v1/messages");
    // SDK 1.x sends the key as a bearer token, not as x-api-key.
    expect(request?.headers["authorization"]).toBe("Bearer test-key");
    // The version the SDK the service ships with speaks; the fake refuses any other.
    expect(request?.headers["anthropic-version"]).toBe("2026-10-21");
    expect(request?.body).toMatchObject({ model: MODEL, stream: true, messages: [{ role: "user", content: "Hello" }] });
  });

  const stopReasons: ReadonlyArray<FakeStopReason> = [
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "refusal",
    "pause_turn",
    "model_context_window_exceeded",
  ];
  for (const stopReason of stopReasons) {
    it(`reports ${stopReason} as the stop reason when scripted, streamed and not`, async () => {
      fake.enqueue({ kind: "text", chunks: ["cut"], stopReason }, { kind: "text", chunks: ["cut"], stopReason });
      const streamed = await clientFor(fake).messages.stream(params()).finalMessage();
      const created = await clientFor(fake).messages.create(params());
      for (const message of [streamed, created]) {
        expect(message.stop_reason).toBe(stopReason);
        expect(message.stop_sequence).toBe(stopReason === "stop_sequence" ? "\n\nHuman:" : null);
      }
    });
  }

  it("reports cache usage, and streams a second content block when scripted", async () => {
    fake.enqueue({
      kind: "text",
      chunks: ["first"],
      secondBlock: [" and", " second"],
      inputTokens: 5,
      outputTokens: 9,
      cacheCreationInputTokens: 100,
      cacheReadInputTokens: 42,
    });
    const stream = clientFor(fake).messages.stream(params());
    const { texts } = collectText(stream);
    const message = await stream.finalMessage();
    expect(texts).toEqual(["first", " and", " second"]);
    expect(message.content).toEqual([
      { type: "text", text: "first" },
      { type: "text", text: " and second" },
    ]);
    expect(message.usage).toMatchObject({
      input_tokens: 5,
      output_tokens: 9,
      cache_creation_input_tokens: 100,
      cache_read_input_tokens: 42,
    });
  });

  it("sends ping events during a long answer and while a paused answer waits", async () => {
    const resume = gate();
    fake.enqueue({ kind: "text", chunks: Array.from({ length: 12 }, (_, i) => `${i} `), pauseAfter: 3, resume: resume.promise });
    // Read the wire itself: the SDK drops ping events before a listener sees them.
    const response = await fetch(`${fake.url}/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": "k", "anthropic-version": "2023-06-01" },
      body: JSON.stringify({ ...params(), stream: true }),
    });
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let wire = "";
    const eventNames = () => [...wire.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    const deltas = () => eventNames().filter((e) => e === "content_block_delta").length;
    while (deltas() < 3) wire += (await reader.read()).value ?? "";
    // Held after 3 chunks until the test says so: nothing more arrives meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(deltas()).toBe(3);
    resume.open();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      wire += value;
    }
    expect(deltas()).toBe(12);
    // One ping after content_block_start, one on resuming, one every 5 chunks (before chunks 5 and 10).
    expect(eventNames().filter((e) => e === "ping")).toHaveLength(4);
    expect(eventNames().at(-1)).toBe("message_stop");
  });

  it("holds a non-streamed answer until released", async () => {
    const resume = gate();
    fake.enqueue({ kind: "text", chunks: ["Title"], pauseAfter: 0, resume: resume.promise });
    let answered = false;
    const created = clientFor(fake)
      .messages.create(params())
      .then((message) => {
        answered = true;
        return message;
      });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(answered).toBe(false);
    resume.open();
    expect((await created).content).toEqual([{ type: "text", text: "Title" }]);
  });

  it("answers a non-streaming create with a JSON Message", async () => {
    fake.enqueue({ kind: "text", chunks: ["A short", " title"] });
    const message = await clientFor(fake).messages.create(params());

    expect(message.type).toBe("message");
    expect(message.role).toBe("assistant");
    expect(message.content).toEqual([{ type: "text", text: "A short title" }]);
    expect(message.stop_reason).toBe("end_turn");
    expect(fake.openStreams).toBe(0);
  });

  it("lets a function reply echo the context it received", async () => {
    fake.setDefault({
      kind: "function",
      reply: (body) => ({ kind: "text", chunks: [`${body.messages.length} messages`] }),
    });
    const text = await clientFor(fake)
      .messages.stream(
        params([
          { role: "user", content: "a" },
          { role: "assistant", content: "b" },
          { role: "user", content: [{ type: "text", text: "c" }] },
        ]),
      )
      .finalText();
    expect(text).toBe("3 messages");
  });

  it("prefixes chunks with a send-time marker in timestampChunks mode", async () => {
    fake.enqueue({ kind: "text", chunks: ["x", "y"], timestampChunks: true });
    const stream = clientFor(fake).messages.stream(params());
    const { texts } = collectText(stream);
    await stream.done();

    expect(texts).toHaveLength(2);
    for (const [i, text] of texts.entries()) {
      expect(text).toMatch(TIMESTAMP_MARKER);
      expect(text.replace(TIMESTAMP_MARKER, "")).toBe(["x", "y"][i]);
    }
  });

  it("retries a 529 with retry-after, then succeeds", async () => {
    fake.enqueue(
      { kind: "httpError", status: 529, errorType: "overloaded_error", retryAfterSeconds: 0.01 },
      { kind: "text", chunks: ["after retry"] },
    );
    const text = await clientFor(fake, 1).messages.stream(params()).finalText();

    expect(text).toBe("after retry");
    expect(fake.requests).toHaveLength(2);
  });

  it("surfaces a 529 as OverloadedError once retries are exhausted", async () => {
    fake.enqueue({ kind: "httpError", errorType: "overloaded_error" });
    const error = await clientFor(fake).messages.create(params()).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(Anthropic.OverloadedError);
    expect(error).toMatchObject({ status: 529, type: "overloaded_error" });
  });

  it("does not retry a 401 and surfaces AuthenticationError", async () => {
    fake.enqueue({ kind: "httpError", status: 401, errorType: "authentication_error", message: "invalid x-api-key" });
    const error = await clientFor(fake, 2)
      .messages.stream(params())
      .finalMessage()
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(Anthropic.AuthenticationError);
    expect(fake.requests).toHaveLength(1);
  });

  it("surfaces a mid-stream overloaded_error after the first chunks", async () => {
    fake.enqueue({ kind: "midStreamError", chunks: ["partial", " answer"] });
    const stream = clientFor(fake).messages.stream(params());
    const { texts } = collectText(stream);
    const error = await stream.finalMessage().catch((e: unknown) => e);

    expect(texts).toEqual(["partial", " answer"]);
    // An SSE error event becomes a plain APIError without a status, not an OverloadedError.
    expect(error).toBeInstanceOf(Anthropic.APIError);
    expect(error).toMatchObject({ status: undefined, type: "overloaded_error" });
  });

  it("surfaces a socket reset as an error", async () => {
    fake.enqueue({ kind: "socketReset", chunks: ["before", " reset"] });
    const stream = clientFor(fake).messages.stream(params());
    const { texts } = collectText(stream);
    const error = await stream.finalMessage().catch((e: unknown) => e);

    expect(error).toBeInstanceOf(Anthropic.AnthropicError);
    expect(error).not.toBeInstanceOf(Anthropic.APIUserAbortError);
    expect(texts).toEqual(["before", " reset"]);
    expect(fake.abortedStreams).toBe(0);
  });

  it("closes the upstream connection when a stalled stream is aborted", async () => {
    fake.enqueue({ kind: "stall", chunks: ["waiting"] });
    const stream = clientFor(fake).messages.stream(params());
    const { firstTexts } = collectText(stream);
    await firstTexts(1);
    expect(fake.openStreams).toBe(1);

    stream.abort();
    await expect(stream.done()).rejects.toBeInstanceOf(Anthropic.APIUserAbortError);
    await fake.idle();

    expect(fake.abortedStreams).toBe(1);
    expect(fake.openStreams).toBe(0);
  });

  it("ends stalled streams on close so nothing hangs", async () => {
    const other = await startFakeAnthropic({ defaultReply: { kind: "stall", chunks: [] } });
    const stream = clientFor(other).messages.stream(params());
    await stream.emitted("connect");

    await other.close();
    await expect(stream.done()).rejects.toBeInstanceOf(Anthropic.AnthropicError);
    expect(other.openStreams).toBe(0);
    expect(other.abortedStreams).toBe(0);
  });

  describe("validation", () => {
    const invalidContexts: ReadonlyArray<readonly [string, Array<FakeMessageParam>]> = [
      ["starts with an assistant message", [{ role: "assistant", content: "Hi" }, { role: "user", content: "Hello" }]],
      ["is empty", []],
      ["has two user messages in a row", [{ role: "user", content: "a" }, { role: "user", content: "b" }]],
      ["has a message with empty content", [{ role: "user", content: "a" }, { role: "assistant", content: "" }, { role: "user", content: "b" }]],
      ["has an empty text block", [{ role: "user", content: [{ type: "text", text: "" }] }]],
      ["has a whitespace-only text block", [{ role: "user", content: [{ type: "text", text: " \n\t " }] }]],
      ["has a whitespace-only message", [{ role: "user", content: "a" }, { role: "assistant", content: "  \n" }, { role: "user", content: "b" }]],
      ["has two assistant messages in a row", [{ role: "user", content: "a" }, { role: "assistant", content: "b" }, { role: "assistant", content: "c" }, { role: "user", content: "d" }]],
      ["ends with an assistant message (prefill)", [{ role: "user", content: "a" }, { role: "assistant", content: "b" }]],
    ];

    for (const [name, messages] of invalidContexts) {
      it(`rejects a context that ${name} with 400`, async () => {
        fake.enqueue({ kind: "text", chunks: ["never sent"] });
        const error = await clientFor(fake, 2)
          .messages.stream(params(messages))
          .finalMessage()
          .catch((e: unknown) => e);

        expect(error).toBeInstanceOf(Anthropic.BadRequestError);
        expect(error).toMatchObject({ status: 400, type: "invalid_request_error" });
        expect(fake.requests).toHaveLength(1);
        expect(fake.rejections).toHaveLength(1);
      });
    }

    it("refuses prefill with the real API's exact words, in the real error body with its request_id", async () => {
      const response = await fetch(`${fake.url}/v1/messages`, {
        method: "POST",
        headers: { "x-api-key": "k", "anthropic-version": "2023-06-01" },
        body: JSON.stringify({ ...params([{ role: "user", content: "a" }, { role: "assistant", content: "b" }]), stream: true }),
      });
      expect(response.status).toBe(400);
      const requestId = response.headers.get("request-id");
      expect(requestId).toMatch(/^req_[0-9a-f]{24}$/);
      expect(await response.json()).toStrictEqual({
        type: "error",
        error: {
          type: "invalid_request_error",
          message: "This model does not support assistant message prefill. The conversation must end with a user message.",
        },
        request_id: requestId,
      });
      expect(PREFILL_MESSAGE).toBe("This model does not support assistant message prefill. The conversation must end with a user message.");
    });

    it("answers an unknown model with 404 not_found_error, streamed or not", async () => {
      const client = clientFor(fake, 2);
      const streamed = await client.messages.stream({ ...params(), model: "claude-no-such-model" }).finalMessage().catch((e: unknown) => e);
      const created = await client.messages.create({ ...params(), model: "claude-no-such-model" }).catch((e: unknown) => e);
      for (const error of [streamed, created]) {
        expect(error).toBeInstanceOf(Anthropic.NotFoundError);
        expect(error).toMatchObject({ status: 404, type: "not_found_error", error: { request_id: expect.stringMatching(/^req_/) } });
      }
      expect(fake.requests).toHaveLength(2);
    });

    it("refuses an unknown anthropic-version and fields the API does not know", async () => {
      const post = (headers: Record<string, string>, body: unknown) =>
        fetch(`${fake.url}/v1/messages`, { method: "POST", headers: { "x-api-key": "k", ...headers }, body: JSON.stringify(body) });
      const oldVersion = await post({ "anthropic-version": "2020-01-01" }, params());
      const extraField = await post({ "anthropic-version": "2023-06-01" }, { ...params(), prefill: "x" });
      for (const response of [oldVersion, extraField]) {
        expect(response.status).toBe(400);
        expect(await response.json()).toMatchObject({ type: "error", error: { type: "invalid_request_error" }, request_id: expect.any(String) });
      }
    });

    it("rejects a request without credentials or anthropic-version with 401", async () => {
      const post = (headers: Record<string, string>) =>
        fetch(`${fake.url}/v1/messages`, { method: "POST", headers, body: JSON.stringify(params()) });

      const noKey = await post({ "anthropic-version": "2023-06-01" });
      const noVersion = await post({ "x-api-key": "k" });

      for (const response of [noKey, noVersion]) {
        expect(response.status).toBe(401);
        expect(response.headers.get("request-id")).toMatch(/^req_/);
        expect(await response.json()).toMatchObject({ type: "error", error: { type: "authentication_error" } });
      }
    });

    it("rejects a body without max_tokens with 400", async () => {
      const response = await fetch(`${fake.url}/v1/messages`, {
        method: "POST",
        headers: { "x-api-key": "k", "anthropic-version": "2023-06-01" },
        body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }] }),
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { type: "invalid_request_error" } });
    });
  });

  describe("prompt caching and count_tokens", () => {
    const post = (path: string, body: unknown) =>
      fetch(`${fake.url}${path}`, {
        method: "POST",
        headers: { "x-api-key": "k", "anthropic-version": "2023-06-01" },
        body: JSON.stringify(body),
      });
    const text = (t: string, cache?: unknown) => ({ type: "text", text: t, ...(cache === undefined ? {} : { cache_control: cache }) });

    const malformed: ReadonlyArray<readonly [string, Record<string, unknown>, string]> = [
      ["a top-level cache_control of another type", { cache_control: { type: "persistent" } }, "cache_control.type: Input should be 'ephemeral'"],
      ["a ttl the API does not offer", { cache_control: { type: "ephemeral", ttl: "10m" } }, "cache_control.ttl: Input should be '5m' or '1h'"],
      ["an unknown key in cache_control", { cache_control: { type: "ephemeral", scope: "global" } }, "cache_control.scope: Extra inputs are not permitted"],
      [
        "a malformed breakpoint on a message block",
        { messages: [{ role: "user", content: [text("hi", { type: "ephemeral", ttl: 300 })] }] },
        "messages.0.content.0.cache_control.ttl: Input should be '5m' or '1h'",
      ],
      [
        "a malformed breakpoint on a system block",
        { system: [text("sys", "ephemeral")] },
        "system.0.cache_control: Input should be a valid dictionary",
      ],
      [
        "five breakpoints (four on blocks and the top-level one)",
        {
          system: [text("a", { type: "ephemeral" }), text("b", { type: "ephemeral" })],
          messages: [{ role: "user", content: [text("c", { type: "ephemeral" }), text("d", { type: "ephemeral", ttl: "1h" })] }],
          cache_control: { type: "ephemeral" },
        },
        "A maximum of 4 blocks with cache_control may be provided. Found 5.",
      ],
    ];
    for (const [name, fields, message] of malformed) {
      it(`refuses ${name} with the real 400 body`, async () => {
        const response = await post("/v1/messages", { ...params(), ...fields });
        expect(response.status).toBe(400);
        expect(await response.json()).toStrictEqual({
          type: "error",
          error: { type: "invalid_request_error", message },
          request_id: response.headers.get("request-id"),
        });
        expect(fake.rejections).toHaveLength(1);
      });
    }

    it("accepts four breakpoints, and both TTLs", async () => {
      const response = await post("/v1/messages", {
        ...params(),
        system: [text("a", { type: "ephemeral", ttl: "1h" }), text("b", { type: "ephemeral" })],
        messages: [{ role: "user", content: [text("c", { type: "ephemeral" }), text("d")] }],
        cache_control: { type: "ephemeral", ttl: "5m" },
      });
      expect(response.status).toBe(200);
      expect(fake.rejections).toHaveLength(0);
    });

    it("writes a prompt that asks for caching, reads it back for a longer prompt with the same leading messages, and not without cache_control", async () => {
      const client = clientFor(fake);
      const system = "You are a helpful assistant. ".repeat(40);
      const first: Array<FakeMessageParam> = [{ role: "user", content: "Build me a todo app" }];
      const second: Array<FakeMessageParam> = [...first, { role: "assistant", content: "Here it is." }, { role: "user", content: "Add dates" }];
      const cached = { type: "ephemeral" } as const;
      const one = await client.messages.create({ ...params(first), system, cache_control: cached });
      const two = await client.messages.create({ ...params(second), system, cache_control: cached });
      const uncached = await client.messages.create({ ...params(second), system });
      expect(one.usage).toMatchObject({ input_tokens: 0, cache_read_input_tokens: 0 });
      expect(one.usage.cache_creation_input_tokens).toBeGreaterThan(system.length / 4);
      expect(two.usage.cache_read_input_tokens).toBe(one.usage.cache_creation_input_tokens);
      expect(two.usage.cache_creation_input_tokens).toBeGreaterThan(0);
      expect(uncached.usage).toMatchObject({ cache_read_input_tokens: 0, cache_creation_input_tokens: 0 });
      const total = (u: Anthropic.Usage) => u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0);
      expect(total(two.usage)).toBe(uncached.usage.input_tokens);
      // A different system prompt is another prefix: nothing to read.
      const other = await client.messages.create({ ...params(second), system: "Another prompt.", cache_control: cached });
      expect(other.usage.cache_read_input_tokens).toBe(0);
      // count_tokens: the whole prompt, as the SDK's countTokens reads it.
      const counted = await client.messages.countTokens({ model: MODEL, messages: params(second).messages, system });
      expect(counted).toStrictEqual({ input_tokens: total(two.usage) });
    });

    it("count_tokens refuses what the Messages API refuses, and max_tokens as an extra input", async () => {
      const prefill = await post("/v1/messages/count_tokens", { model: MODEL, messages: [{ role: "user", content: "a" }, { role: "assistant", content: "b" }] });
      const extra = await post("/v1/messages/count_tokens", { ...params() });
      for (const response of [prefill, extra]) {
        expect(response.status).toBe(400);
        expect(await response.json()).toMatchObject({ type: "error", error: { type: "invalid_request_error" } });
      }
      expect(fake.countRequests).toBe(0);
    });
  });

  it.scoped("works as a scoped Effect resource", () =>
    Effect.gen(function* () {
      const scoped = yield* FakeAnthropicScoped;
      const message = yield* Effect.promise(() => clientFor(scoped).messages.create(params()));
      expect(message.content[0]).toMatchObject({ type: "text", text: "Hello from the fake Claude." });
    }),
  );
});
