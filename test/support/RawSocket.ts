/**
 * A lean WebSocket client for fuzzing: thousands of frames on one connection, so it keeps
 * counters instead of scanning every event on every wait. Every server frame is decoded
 * exactly against the protocol's event shapes (`WireServerEvent`); anything else is a
 * violation.
 */
import { Either, Schema } from "effect"
import WebSocket from "ws"
import { type ServerEvent, WireServerEvent } from "./ChatClient.js"

const decode = Schema.decodeUnknownEither(WireServerEvent, { onExcessProperty: "error" })

export class RawSocket {
  readonly events: Array<ServerEvent> = []
  readonly frames: Array<string> = []
  readonly violations: Array<string> = []
  pongs = 0
  closeCode: number | undefined
  private readonly waiters = new Set<() => void>()

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data, isBinary) => {
      const raw = isBinary ? `<binary ${(data as Buffer).length} bytes>` : data.toString()
      this.frames.push(raw)
      let json: unknown
      try {
        json = isBinary ? undefined : JSON.parse(raw)
      } catch {
        json = undefined
      }
      const decoded = decode(json)
      if (Either.isLeft(decoded)) this.violations.push(raw)
      else {
        this.events.push(decoded.right)
        if (decoded.right.type === "pong") this.pongs++
      }
      this.wake()
    })
    ws.on("close", (code) => {
      this.closeCode = code
      this.wake()
    })
  }

  static open(url: string): Promise<RawSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { handshakeTimeout: 10_000 })
      const socket = new RawSocket(ws)
      ws.once("open", () => resolve(socket))
      ws.once("error", reject)
    })
  }

  private wake() {
    for (const waiter of [...this.waiters]) waiter()
  }

  send(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) =>
      this.ws.send(data, { binary: Buffer.isBuffer(data) }, (error) => (error ? reject(error) : resolve()))
    )
  }

  /** Resolves once `pongs >= n`; rejects on close or after `timeoutMs` (liveness only). */
  awaitPongs(n: number, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check)
        reject(new Error(`no pong #${n} within ${timeoutMs} ms; last frames:\n  ${this.frames.slice(-5).join("\n  ")}`))
      }, timeoutMs)
      const check = () => {
        if (this.pongs >= n) {
          clearTimeout(timer)
          this.waiters.delete(check)
          resolve()
        } else if (this.closeCode !== undefined) {
          clearTimeout(timer)
          this.waiters.delete(check)
          reject(new Error(`the connection closed (${this.closeCode}) while waiting for pong #${n}`))
        }
      }
      this.waiters.add(check)
      check()
    })
  }

  /** Resolves once an event satisfies `predicate`; rejects on close or after `timeoutMs` (liveness only). */
  awaitEvent(predicate: (event: ServerEvent) => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check)
        reject(new Error(`no ${what} within ${timeoutMs} ms; last frames:\n  ${this.frames.slice(-5).join("\n  ")}`))
      }, timeoutMs)
      const check = () => {
        if (this.events.some(predicate)) {
          clearTimeout(timer)
          this.waiters.delete(check)
          resolve()
        } else if (this.closeCode !== undefined) {
          clearTimeout(timer)
          this.waiters.delete(check)
          reject(new Error(`the connection closed (${this.closeCode}) while waiting for ${what}`))
        }
      }
      this.waiters.add(check)
      check()
    })
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve()
      this.ws.once("close", () => resolve())
      this.ws.close(1000)
      setTimeout(() => this.ws.terminate(), 2_000).unref()
    })
  }
}
