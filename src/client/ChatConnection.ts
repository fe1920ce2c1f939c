import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { type ChatMessageFrame, type ClientFrame, ServerEvent } from "../domain/ChatProtocol.js"
import { type Answer, AnswerAssembler } from "./Answers.js"
import { storedCompletions } from "./Reconcile.js"
import { backoffDelay, type BackoffOptions } from "./Backoff.js"
import { chatSocketUrl, newClientMessageId, OPEN, resolveWebSocket, type WebSocketConstructor, type WebSocketLike } from "./Socket.js"

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed"

/** Everything a chat connection reports, in order. */
export type ChatEvent =
  /** The connection's state; `retryInMs` when a reconnect is scheduled. */
  | { readonly _tag: "Connection"; readonly state: ConnectionState; readonly attempt: number; readonly retryInMs?: number }
  /** Every server event, decoded with the protocol's Schema, as it arrived. */
  | { readonly _tag: "Server"; readonly event: typeof ServerEvent.Type }
  /** An answer after an event changed it; `delta` is only the text new to this client. */
  | { readonly _tag: "Answer"; readonly answer: Answer; readonly delta: string }
  /** A frame that is not a known server event (a newer server); ignored otherwise. */
  | { readonly _tag: "Unknown"; readonly raw: string }

export interface ChatConnectionOptions {
  /** The service's base URL (`http://host:port`, `https://…` or `ws(s)://…`). */
  readonly baseUrl: string
  readonly projectId: string
  /** The AUTH_TOKEN, sent as `?token=`; a function is asked again at every (re)connect. */
  readonly token?: string | undefined | (() => string | undefined)
  /** Required on Node 20 (e.g. `WebSocket` from `ws`); the global one otherwise. */
  readonly WebSocket?: WebSocketConstructor
  readonly backoff?: BackoffOptions
  /** App-level ping period; a connection silent for two periods is dropped and reconnected (default 20 s). */
  readonly pingIntervalMs?: number
  /** Randomness for jitter (tests pass a fixed one). */
  readonly random?: () => number
}

export interface SendOptions {
  /** Reuse an id to make a retry safe across page reloads; a fresh one otherwise. */
  readonly clientMessageId?: string
}

const decodeServerEvent = Schema.decodeUnknownEither(ServerEvent)

/** The `continue` frame (issue 11): continues the project's latest answer under the same messageId. */
interface ContinueFrame {
  readonly type: "continue"
  readonly messageId: string
}

type OutgoingFrame = typeof ClientFrame.Encoded | ContinueFrame

/**
 * One project's chat over `/ws/chat`, kept connected: reconnects with exponential backoff
 * and jitter, assembles answers by `offset` (the server's catch-up after a reconnect never
 * duplicates text), and resends every `chat_message` not yet acknowledged (by a
 * `message_start` or an error) with its `clientMessageId`, which the server answers without
 * storing or generating anything twice.
 */
export class ChatConnection {
  private readonly WebSocketImpl: WebSocketConstructor
  private readonly listeners = new Set<(event: ChatEvent) => void>()
  private readonly assembler = new AnswerAssembler()
  /** Sends awaiting acknowledgement, oldest first; resent after every reconnect. */
  private readonly unacknowledged: Array<typeof ChatMessageFrame.Encoded> = []
  /** Frames given while disconnected (cancel, continue), sent once on the next open. */
  private readonly queued: Array<OutgoingFrame> = []
  private socket: WebSocketLike | undefined
  private attempt = 0
  private closedByUser = false
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  private pingTimer: ReturnType<typeof setInterval> | undefined
  private lastFrameAt = 0
  private currentState: ConnectionState = "connecting"

  constructor(private readonly options: ChatConnectionOptions) {
    this.WebSocketImpl = resolveWebSocket(options.WebSocket)
    this.open()
  }

  get state(): ConnectionState {
    return this.currentState
  }

  /** The answer as assembled so far. */
  answer(messageId: string): Answer | undefined {
    return this.assembler.get(messageId)
  }

  /** Sends a chat message; returns its clientMessageId. Kept and resent until acknowledged. */
  send(content: string, options: SendOptions = {}): string {
    const clientMessageId = options.clientMessageId ?? newClientMessageId()
    const frame: typeof ChatMessageFrame.Encoded = { type: "chat_message", content, timestamp: new Date().toISOString(), clientMessageId }
    this.unacknowledged.push(frame)
    if (this.isOpen()) this.write(frame)
    return clientMessageId
  }

  /** Stops the running answer (only if it is `messageId`, when given). */
  cancel(messageId?: string): void {
    this.sendOrQueue(messageId === undefined ? { type: "cancel" } : { type: "cancel", messageId })
  }

  /** Continues an answer that stopped early (interrupted, error, cancelled, or cut at max_tokens). */
  continue(messageId: string): void {
    this.sendOrQueue({ type: "continue", messageId })
  }

  /** Calls `listener` with every event from now on; returns the unsubscribe function. */
  subscribe(listener: (event: ChatEvent) => void): () => void {
    this.listeners.add(listener)
    return () => void this.listeners.delete(listener)
  }

  /** The events from now on as an async iterator (ends when the connection is closed). */
  events(): AsyncIterableIterator<ChatEvent> {
    const buffered: Array<ChatEvent> = []
    let wake: (() => void) | undefined
    let done = false
    const unsubscribe = this.subscribe((event) => {
      buffered.push(event)
      if (event._tag === "Connection" && event.state === "closed") done = true
      wake?.()
    })
    const iterator: AsyncIterableIterator<ChatEvent> = {
      next: async () => {
        while (buffered.length === 0 && !done) await new Promise<void>((resolve) => (wake = resolve))
        const event = buffered.shift()
        if (event === undefined) {
          unsubscribe()
          return { done: true, value: undefined }
        }
        return { done: false, value: event }
      },
      return: async () => {
        unsubscribe()
        done = true
        return { done: true, value: undefined }
      },
      [Symbol.asyncIterator]: () => iterator
    }
    return iterator
  }

  /** Closes for good: no reconnect; unacknowledged sends are dropped. */
  close(): void {
    if (this.closedByUser) return
    this.closedByUser = true
    clearTimeout(this.retryTimer)
    clearInterval(this.pingTimer)
    this.socket?.close(1000, "client closed")
    this.socket = undefined
    this.setState("closed")
  }

  private isOpen(): boolean {
    return this.socket !== undefined && this.socket.readyState === OPEN && this.currentState === "open"
  }

  private sendOrQueue(frame: OutgoingFrame): void {
    if (this.isOpen()) this.write(frame)
    else this.queued.push(frame)
  }

  private write(frame: OutgoingFrame): void {
    this.socket?.send(JSON.stringify(frame))
  }

  private emit(event: ChatEvent): void {
    for (const listener of [...this.listeners]) listener(event)
  }

  private setState(state: ConnectionState, retryInMs?: number): void {
    this.currentState = state
    this.emit(retryInMs === undefined
      ? { _tag: "Connection", state, attempt: this.attempt }
      : { _tag: "Connection", state, attempt: this.attempt, retryInMs })
  }

  private open(): void {
    if (this.closedByUser) return
    const token = typeof this.options.token === "function" ? this.options.token() : this.options.token
    const socket = new this.WebSocketImpl(chatSocketUrl(this.options.baseUrl, this.options.projectId, token))
    this.socket = socket
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting")
    socket.onopen = () => {
      if (this.socket !== socket) return
      this.attempt = 0
      this.lastFrameAt = Date.now()
      this.setState("open")
      for (const frame of this.unacknowledged) this.write(frame)
      for (const frame of this.queued.splice(0)) this.write(frame)
      this.startPings(socket)
      this.settleAnswersEndedAway()
    }
    socket.onmessage = (message) => {
      if (this.socket !== socket) return
      this.lastFrameAt = Date.now()
      if (typeof message.data === "string") this.receive(message.data)
    }
    socket.onerror = () => {
      // Always followed by `onclose`, which reconnects.
    }
    socket.onclose = () => {
      if (this.socket !== socket) return
      this.socket = undefined
      clearInterval(this.pingTimer)
      if (this.closedByUser) return
      this.attempt++
      const delay = backoffDelay(this.attempt, this.options.backoff, this.options.random)
      this.setState("reconnecting", delay)
      this.retryTimer = setTimeout(() => this.open(), delay)
    }
  }

  /** Answers still streaming here may have ended while the socket was down: ask what is stored. */
  private settleAnswersEndedAway(): void {
    const streaming = this.assembler.streaming()
    if (streaming.length === 0) return
    const { baseUrl, projectId, token } = this.options
    void storedCompletions(token === undefined ? { baseUrl, projectId } : { baseUrl, projectId, token }, streaming).then((completions) => {
      for (const completion of completions) {
        // Only if no live event settled it meanwhile.
        if (this.assembler.get(completion.messageId)?.status !== "streaming") continue
        const update = this.assembler.apply(completion)
        if (update !== undefined) this.emit({ _tag: "Answer", answer: update.answer, delta: update.delta })
      }
    })
  }

  private startPings(socket: WebSocketLike): void {
    const period = this.options.pingIntervalMs ?? 20_000
    clearInterval(this.pingTimer)
    this.pingTimer = setInterval(() => {
      if (this.socket !== socket) return
      // A half-open TCP connection never closes by itself: drop it and reconnect.
      if (Date.now() - this.lastFrameAt > 2 * period) socket.close(4000, "no answer to pings")
      else this.write({ type: "ping" })
    }, period)
  }

  private receive(raw: string): void {
    let json: unknown
    try {
      json = JSON.parse(raw)
    } catch {
      return this.emit({ _tag: "Unknown", raw })
    }
    const decoded = decodeServerEvent(json)
    if (Either.isLeft(decoded)) return this.emit({ _tag: "Unknown", raw })
    const event = decoded.right
    // The oldest send is acknowledged by its answer starting (or being re-announced), or refused.
    if (event.type === "message_start" || (event.type === "error" && event.messageId === undefined)) this.unacknowledged.shift()
    this.emit({ _tag: "Server", event })
    const update = this.assembler.apply(event)
    if (update !== undefined) this.emit({ _tag: "Answer", answer: update.answer, delta: update.delta })
  }
}
