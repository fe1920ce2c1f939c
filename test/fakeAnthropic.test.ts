import Anthropic from "@anthropic-ai/sdk";
import type { MessageStream } from "@anthropic-ai/sdk/lib/MessageStream";
import { afterEach, beforeEach, describe, expect, it } from "@effect/vitest";
import { Effect } from "effect";
import {
  FakeAnthropicScoped,
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
    expect(request?.headers["anthropic-version"]).toBeDefined();
    expect(request?.body).toMatchObject({ model: MODEL, stream: true, messages: [{ role: "user", content: "Hello" }] });
  });

  it("reports max_tokens as the stop reason when scripted", async () => {
    fake.enqueue({ kind: "text", chunks: ["cut"], stopReason: "max_tokens" });
    const message = await clientFor(fake).messages.stream(params()).finalMessage();
    expect(message.stop_reason).toBe("max_tokens");
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
      });
    }

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

  it.scoped("works as a scoped Effect resource", () =>
    Effect.gen(function* () {
      const scoped = yield* FakeAnthropicScoped;
      const message = yield* Effect.promise(() => clientFor(scoped).messages.create(params()));
      expect(message.content[0]).toMatchObject({ type: "text", text: "Hello from the fake Claude." });
    }),
  );
});
