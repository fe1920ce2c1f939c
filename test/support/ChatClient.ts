/**
 * A small WebSocket client for `/ws/chat`, written against the wire protocol (not `src/`).
 *
 * Every text frame the server sends is parsed and decoded exactly against the protocol's
 * event shapes (a missing, extra or mistyped field is recorded as a violation and fails the
 * next wait). Waits are bounded by generous liveness timeouts only; nothing measures time.
 */
import { Duration, Effect, Either, Schema, type Scope } from "effect"
import type { IncomingMessage } from "node:http"
import WebSocket from "ws"
import { LIVENESS_TIMEOUT_MS } from "./Http.js"
import { ISO_TIMESTAMP, UUID, WireCodeBlock, WireUsage } from "./Wire.js"

// ---------------------------------------------------------------------------------------------
// Server events as clients receive them

const IsoTimestamp = Schema.String.pipe(Schema.pattern(ISO_TIMESTAMP))
const Uuid = Schema.String.pipe(Schema.pattern(UUID))

export const WireMessageStart = Schema.Struct({
  type: Schema.Literal("message_start"),
  messageId: Uuid,
  userMessageId: Uuid,
  resumed: Schema.optional(Schema.Boolean),
  timestamp: IsoTimestamp
})

export const WireMessageChunk = Schema.Struct({
  type: Schema.Literal("message_chunk"),
  messageId: Uuid,
  content: Schema.String,
  seq: Schema.Int.pipe(Schema.positive()),
  offset: Schema.Int.pipe(Schema.nonNegative()),
  timestamp: IsoTimestamp
})

export const WireMessageComplete = Schema.Struct({
  type: Schema.Literal("message_complete"),
  messageId: Uuid,
  fullContent: Schema.String,
  codeBlocks: Schema.Array(WireCodeBlock),
  status: Schema.Literal("complete", "cancelled", "error", "interrupted"),
  stopReason: Schema.NullOr(Schema.String),
  continuations: Schema.Int.pipe(Schema.nonNegative()),
  /** Issue 14: tokens the answer cost, null when Claude reported none. */
  usage: Schema.NullOr(WireUsage),
  timestamp: IsoTimestamp
})

export const WireErrorEvent = Schema.Struct({
  type: Schema.Literal("error"),
  error: Schema.String.pipe(Schema.minLength(1)),
  code: Schema.String,
  messageId: Schema.optional(Uuid),
  timestamp: IsoTimestamp
})

export const WirePong = Schema.Struct({ type: Schema.Literal("pong"), timestamp: IsoTimestamp })

export const WireProjectUpdated = Schema.Struct({
  type: Schema.Literal("project_updated"),
  projectId: Uuid,
  title: Schema.String,
  timestamp: IsoTimestamp
})

export const WireServerEvent = Schema.Union(
  WireMessageStart,
  WireMessageChunk,
  WireMessageComplete,
  WireErrorEvent,
  WirePong,
  WireProjectUpdated
)

export type MessageStart = typeof WireMessageStart.Type
export type MessageChunk = typeof WireMessageChunk.Type
export type MessageComplete = typeof WireMessageComplete.Type
export type ErrorEvent = typeof WireErrorEvent.Type
export type Pong = typeof WirePong.Type
export type ProjectUpdated = typeof WireProjectUpdated.Type
export type ServerEvent = typeof WireServerEvent.Type
export type ServerEventType = ServerEvent["type"]
export type EventOf<T extends ServerEventType> = Extract<ServerEvent, { readonly type: T }>

const decodeEvent = Schema.decodeUnknownEither(WireServerEvent, { onExcessProperty: "error", errors: "all" })

// ---------------------------------------------------------------------------------------------
// The client

/** The handshake was refused with an HTTP answer instead of `101 Switching Protocols`. */
export interface Refusal {
  readonly _tag: "Refusal"
  readonly status: number
  readonly contentType: string | undefined
  readonly text: string
  readonly json: unknown
}

export interface ConnectOptions {
  /** Sent as the `Origin` header. */
  readonly origin?: string
  /** `ws` option: answer protocol pings automatically (default true). */
  readonly autoPong?: boolean
  /** Raw query string instead of `projectId=…` (for malformed handshakes). */
  readonly query?: string
}

/** What a whole answer looked like on the wire. */
export interface Answer {
  readonly start: MessageStart
  readonly chunks: ReadonlyArray<MessageChunk>
  /** `message_complete`, or the `error` event that ended the answer. */
  readonly end: MessageComplete | ErrorEvent
  /** The raw text frames for this answer, in arrival order (start, chunks, end). */
  readonly frames: ReadonlyArray<string>
}

interface Received {
  readonly raw: string
  readonly event: ServerEvent | undefined
  readonly problem: string | undefined
}

export interface CloseInfo {
  readonly code: number
  readonly reason: string
}

export class ChatClient {
  private readonly received: Array<Received> = []
  private readonly waiters = new Set<() => void>()
  private cursor = 0
  /** Protocol-level pings received from the server (the `ws` 'ping' event). */
  pings = 0
  readonly closed: Promise<CloseInfo>
  private closeInfo: CloseInfo | undefined

  constructor(readonly ws: WebSocket) {
    ws.on("message", (data, isBinary) => {
      const raw = isBinary ? `<binary ${String((data as Buffer).length)} bytes>` : data.toString()
      this.received.push(parse(raw, isBinary))
      this.wake()
    })
    ws.on("ping", () => {
      this.pings++
      this.wake()
    })
    this.closed = new Promise<CloseInfo>((resolve) => {
      ws.on("close", (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() }
        resolve(this.closeInfo)
        this.wake()
      })
    })
  }

  private wake() {
    for (const waiter of [...this.waiters]) waiter()
  }

  /** Every event received so far, in order (frames that failed to decode are left out). */
  get events(): ReadonlyArray<ServerEvent> {
    return this.received.flatMap((r) => (r.event === undefined ? [] : [r.event]))
  }

  /** Raw text of every frame received so far. */
  get frames(): ReadonlyArray<string> {
    return this.received.map((r) => r.raw)
  }

  /** Frames that were not a valid protocol event. */
  get violations(): ReadonlyArray<string> {
    return this.received.flatMap((r) => (r.problem === undefined ? [] : [`${r.problem}: ${r.raw}`]))
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN
  }

  /** Sends an object as JSON, a string verbatim, or a Buffer as a binary frame. */
  send(data: unknown): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      const payload = typeof data === "string" || Buffer.isBuffer(data) ? data : JSON.stringify(data)
      this.ws.send(payload, { binary: Buffer.isBuffer(data) }, (error) =>
        resume(error === undefined || error === null ? Effect.void : Effect.die(error))
      )
    })
  }

  /** Sends a `chat_message`. */
  chat(content: unknown, extra: Record<string, unknown> = {}): Effect.Effect<void> {
    return this.send({ type: "chat_message", content, timestamp: new Date().toISOString(), ...extra })
  }

  /**
   * Resolves when `check` returns a value; re-checked on every frame, ping and close. Dies
   * after `timeoutMs` (a liveness bound, not an assertion about speed) or on a protocol violation.
   */
  private waitUntil<A>(describe: string, check: () => A | undefined, timeoutMs: number): Effect.Effect<A> {
    return Effect.async<A>((resume) => {
      let done = false
      const finish = (effect: Effect.Effect<A>) => {
        if (done) return
        done = true
        this.waiters.delete(attempt)
        clearTimeout(timer)
        resume(effect)
      }
      const attempt = () => {
        const violation = this.received.find((r) => r.problem !== undefined)
        if (violation !== undefined) {
          return finish(Effect.dieMessage(`protocol violation while waiting for ${describe}: ${violation.problem} in ${violation.raw}`))
        }
        const value = check()
        if (value !== undefined) finish(Effect.succeed(value))
      }
      const timer = setTimeout(() => {
        const seen = this.received.map((r) => r.raw).join("\n  ")
        finish(Effect.dieMessage(`timed out after ${timeoutMs} ms waiting for ${describe}; received:\n  ${seen}`))
      }, timeoutMs)
      this.waiters.add(attempt)
      attempt()
      return Effect.sync(() => {
        done = true
        this.waiters.delete(attempt)
        clearTimeout(timer)
      })
    })
  }

  /**
   * The next event (after the previous `next`/`waitFor` match) that satisfies `predicate`;
   * the cursor moves past it. Events skipped over stay in `events`.
   */
  next<E extends ServerEvent>(
    predicate: ((event: ServerEvent) => event is E) | ((event: ServerEvent) => boolean),
    timeoutMs = LIVENESS_TIMEOUT_MS,
    describe = "a matching event"
  ): Effect.Effect<E> {
    return this.waitUntil(describe, () => {
      for (let i = this.cursor; i < this.received.length; i++) {
        const event = this.received[i]?.event
        if (event !== undefined && predicate(event)) {
          this.cursor = i + 1
          return event as E
        }
      }
      return undefined
    }, timeoutMs)
  }

  /** Any event so far or to come (whatever the cursor) that satisfies `predicate`; the cursor does not move. */
  eventually<E extends ServerEvent>(
    predicate: ((event: ServerEvent) => event is E) | ((event: ServerEvent) => boolean),
    timeoutMs = LIVENESS_TIMEOUT_MS,
    describe = "a matching event"
  ): Effect.Effect<E> {
    return this.waitUntil(describe, () => this.events.find(predicate) as E | undefined, timeoutMs)
  }

  /** Any event of this type, received before or after the cursor; the cursor does not move. */
  seen<T extends ServerEventType>(type: T, timeoutMs = LIVENESS_TIMEOUT_MS): Effect.Effect<EventOf<T>> {
    return this.eventually((event): event is EventOf<T> => event.type === type, timeoutMs, `a ${type} event`)
  }

  /** The next event of this type. */
  waitFor<T extends ServerEventType>(type: T, timeoutMs = LIVENESS_TIMEOUT_MS): Effect.Effect<EventOf<T>> {
    return this.next((event): event is EventOf<T> => event.type === type, timeoutMs, `a ${type} event`)
  }

  /** Sends `ping` and waits for the `pong` that answers it. */
  ping(timeoutMs = LIVENESS_TIMEOUT_MS): Effect.Effect<Pong> {
    return this.send({ type: "ping" }).pipe(Effect.zipRight(this.waitFor("pong", timeoutMs)))
  }

  /**
   * Waits for the end of answer `messageId` (`message_complete`, or an `error` naming it)
   * and returns every frame of that answer. The cursor moves past the end.
   */
  untilComplete(messageId: string, timeoutMs = LIVENESS_TIMEOUT_MS): Effect.Effect<Answer> {
    return Effect.gen(this, function* () {
      const end = yield* this.next(
        (event): event is MessageComplete | ErrorEvent =>
          (event.type === "message_complete" || event.type === "error") && event.messageId === messageId,
        timeoutMs,
        `the end of answer ${messageId}`
      )
      const mine = this.received.filter((r) => {
        const event = r.event
        return event !== undefined &&
          (event.type === "message_start" || event.type === "message_chunk" || event.type === "message_complete" ||
            event.type === "error") &&
          event.messageId === messageId
      })
      const start = mine.find((r) => r.event?.type === "message_start")?.event
      if (start === undefined || start.type !== "message_start") {
        return yield* Effect.dieMessage(`answer ${messageId} ended without a message_start`)
      }
      const chunks = mine.flatMap((r) => (r.event?.type === "message_chunk" ? [r.event] : []))
      return { start, chunks, end, frames: mine.map((r) => r.raw) }
    })
  }

  /** Sends a chat message and follows its answer to the end. */
  ask(content: string, timeoutMs = LIVENESS_TIMEOUT_MS): Effect.Effect<Answer> {
    return Effect.gen(this, function* () {
      yield* this.chat(content)
      const start = yield* this.waitFor("message_start", timeoutMs)
      return yield* this.untilComplete(start.messageId, timeoutMs)
    })
  }

  /** Waits until the server closes the connection (or it is closed otherwise). */
  awaitClose(timeoutMs = LIVENESS_TIMEOUT_MS): Effect.Effect<CloseInfo> {
    return this.waitUntil("the connection to close", () => this.closeInfo, timeoutMs)
  }

  /** Waits until at least `n` protocol pings arrived. */
  awaitPings(n: number, timeoutMs = LIVENESS_TIMEOUT_MS): Effect.Effect<number> {
    return this.waitUntil(`${n} protocol pings`, () => (this.pings >= n ? this.pings : undefined), timeoutMs)
  }

  /** Closes the connection and waits for the close handshake (or terminates after a bound). */
  close(): Effect.Effect<void> {
    return Effect.promise(async () => {
      if (this.ws.readyState === WebSocket.CLOSED) return
      const closed = this.closed
      if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate()
      else this.ws.close(1000, "test done")
      const timer = setTimeout(() => this.ws.terminate(), 2_000)
      await closed
      clearTimeout(timer)
    })
  }
}

const parse = (raw: string, isBinary: boolean): Received => {
  if (isBinary) return { raw, event: undefined, problem: "binary frame from the server" }
  let json: unknown
  try {
    json = JSON.parse(raw)
  } catch {
    return { raw, event: undefined, problem: "frame is not JSON" }
  }
  return Either.match(decodeEvent(json), {
    onLeft: (error) => ({ raw, event: undefined, problem: `not a protocol event (${error.message.replace(/\s+/g, " ")})` }),
    onRight: (event) => ({ raw, event, problem: undefined })
  })
}

// ---------------------------------------------------------------------------------------------
// Connecting

const chatUrl = (wsUrl: string, projectId: string, options: ConnectOptions) =>
  `${wsUrl}/ws/chat?${options.query ?? `projectId=${encodeURIComponent(projectId)}`}`

const readRefusal = (res: IncomingMessage): Promise<Refusal> =>
  new Promise((resolve) => {
    const parts: Array<Buffer> = []
    res.on("data", (part: Buffer) => parts.push(part))
    res.on("end", () => {
      const text = Buffer.concat(parts).toString("utf8")
      let json: unknown
      try {
        json = text === "" ? undefined : JSON.parse(text)
      } catch {
        json = undefined
      }
      const contentType = res.headers["content-type"]
      resolve({ _tag: "Refusal", status: res.statusCode ?? 0, contentType, text, json })
    })
    res.on("error", () => resolve({ _tag: "Refusal", status: res.statusCode ?? 0, contentType: undefined, text: "", json: undefined }))
  })

/**
 * Opens a connection; succeeds with the client once open, or with the HTTP refusal.
 * The client is closed when the scope closes.
 */
export const tryConnect = (
  wsUrl: string,
  projectId: string,
  options: ConnectOptions = {}
): Effect.Effect<Either.Either<ChatClient, Refusal>, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<Either.Either<ChatClient, Refusal>>((resume) => {
      const ws = new WebSocket(chatUrl(wsUrl, projectId, options), {
        ...(options.origin === undefined ? {} : { origin: options.origin }),
        autoPong: options.autoPong ?? true,
        handshakeTimeout: LIVENESS_TIMEOUT_MS
      })
      const client = new ChatClient(ws)
      let settled = false
      const settle = (effect: Effect.Effect<Either.Either<ChatClient, Refusal>>) => {
        if (settled) return
        settled = true
        resume(effect)
      }
      ws.once("open", () => settle(Effect.succeed(Either.right(client))))
      ws.once("unexpected-response", (_req, res) => {
        void readRefusal(res).then((refusal) => {
          ws.terminate()
          settle(Effect.succeed(Either.left(refusal)))
        })
      })
      ws.once("error", (error) => settle(Effect.dieMessage(`WebSocket connection failed: ${error.message}`)))
    }),
    (result) => (Either.isRight(result) ? result.right.close() : Effect.void)
  )

/** Opens a connection that must succeed; closed when the scope closes. */
export const connect = (wsUrl: string, projectId: string, options: ConnectOptions = {}) =>
  tryConnect(wsUrl, projectId, options).pipe(
    Effect.flatMap(
      Either.match({
        onLeft: (refusal) => Effect.dieMessage(`handshake refused: ${refusal.status} ${refusal.text}`),
        onRight: Effect.succeed
      })
    )
  )

/** Opens a connection that must be refused; returns the HTTP answer. */
export const refused = (wsUrl: string, projectId: string, options: ConnectOptions = {}) =>
  tryConnect(wsUrl, projectId, options).pipe(
    Effect.flatMap(
      Either.match({
        onLeft: Effect.succeed,
        onRight: () => Effect.dieMessage("expected the handshake to be refused, but the connection opened")
      })
    )
  )

/** A short pause for "nothing else happens" checks (bounded, never asserted on). */
export const settle = (millis = 200) => Effect.sleep(Duration.millis(millis))
