/**
 * The WebSocket the client needs: the browser's, Node 22's global one, or `ws` on Node 20
 * (all three have `onopen`/`onmessage`/`onclose`/`onerror` and `send`/`close`).
 */
export interface WebSocketLike {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: Handler<unknown> | null
  onmessage: Handler<{ readonly data: unknown }> | null
  onclose: Handler<{ readonly code: number; readonly reason: string }> | null
  onerror: Handler<unknown> | null
}

// Checked like a method (bivariantly), so each implementation's own event types fit.
type Handler<E> = { bivarianceHack(event: E): void }["bivarianceHack"]

export type WebSocketConstructor = new (url: string) => WebSocketLike

export const OPEN = 1

const isConstructor = (value: unknown): value is WebSocketConstructor => typeof value === "function"

/** The given constructor, else the global one; a clear error where neither exists (Node 20 without `ws`). */
export const resolveWebSocket = (given: WebSocketConstructor | undefined): WebSocketConstructor => {
  if (given !== undefined) return given
  const global: unknown = Reflect.get(globalThis, "WebSocket")
  if (isConstructor(global)) return global
  throw new Error("no global WebSocket here (Node 20): pass the `WebSocket` option, e.g. `WebSocket` from the `ws` package")
}

/** `ws(s)://host/ws/chat?projectId=…[&token=…]` from the service's base URL (http(s) or ws(s)). */
export const chatSocketUrl = (baseUrl: string, projectId: string, token: string | undefined): string => {
  const url = new URL("/ws/chat", baseUrl)
  url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:"
  url.searchParams.set("projectId", projectId)
  if (token !== undefined && token !== "") url.searchParams.set("token", token)
  return url.toString()
}

/** A random id for `clientMessageId`; `crypto.randomUUID` is missing on plain-http pages. */
export const newClientMessageId = (): string => {
  const bytes = new Uint8Array(16)
  globalThis.crypto.getRandomValues(bytes)
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("")
}
