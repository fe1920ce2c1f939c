/**
 * A TCP proxy on 127.0.0.1 between the service and PostgreSQL, so tests can take the
 * database away (and give it back) without touching the server every other test uses,
 * or make it slow.
 */
import { Effect } from "effect"
import * as Net from "node:net"

/** What the proxy does with new connections while paused. */
export type PauseMode =
  /** Accept and close at once: the client sees the connection end before any reply. */
  | "refuse"
  /** Accept and never answer: the client waits until its own connect timeout. */
  | "blackhole"

export interface TcpProxy {
  readonly host: string
  readonly port: number
  /** `databaseUrl` with its host and port replaced by the proxy's. */
  readonly urlFor: (databaseUrl: string) => string
  /** Destroys every open connection; new ones are refused or blackholed until `resume()`. */
  readonly pause: (mode?: PauseMode) => void
  readonly resume: () => void
  /** Holds every chunk PostgreSQL sends back (in order) until `releaseReplies()`: a query that takes as long as the test wants. */
  readonly holdReplies: () => void
  readonly releaseReplies: () => void
  /** Delay applied to every chunk PostgreSQL sends back (order is kept). 0 turns it off. */
  readonly setDelay: (delayMs: number) => void
  /** Bytes received from clients so far (tells a test that a query has reached the proxy). */
  readonly bytesFromClients: () => number
  readonly close: () => Promise<void>
}

export interface TcpProxyTarget {
  readonly host: string
  readonly port: number
}

/** Host and port of a `postgres://` URL (5432 when the URL has none). */
export const targetOf = (databaseUrl: string): TcpProxyTarget => {
  const url = new URL(databaseUrl)
  return { host: url.hostname, port: url.port === "" ? 5432 : Number(url.port) }
}

export const startTcpProxy = async (
  target: TcpProxyTarget,
  options: { readonly delayMs?: number } = {}
): Promise<TcpProxy> => {
  let paused: PauseMode | undefined
  let delayMs = options.delayMs ?? 0
  let fromClients = 0
  let held: Array<() => void> | undefined
  const open = new Set<Net.Socket>()

  const track = (socket: Net.Socket) => {
    open.add(socket)
    socket.once("close", () => open.delete(socket))
  }

  const server = Net.createServer((client) => {
    track(client)
    // Errors end in "close"; without a listener they would crash the test process.
    client.on("error", () => {})
    if (paused === "refuse") {
      client.destroy()
      return
    }
    if (paused === "blackhole") {
      client.pause()
      return
    }
    const upstream = Net.connect(target.port, target.host)
    track(upstream)
    upstream.on("error", () => client.destroy())
    client.on("close", () => upstream.destroy())
    upstream.on("close", () => client.destroy())
    client.on("data", (chunk) => {
      fromClients += chunk.length
      upstream.write(chunk)
    })
    upstream.on("data", (chunk) => {
      if (held !== undefined) {
        held.push(() => {
          if (!client.destroyed) client.write(chunk)
        })
        return
      }
      if (delayMs === 0) {
        client.write(chunk)
        return
      }
      // Same delay for every chunk: timers fire in the order they were set.
      setTimeout(() => {
        if (!client.destroyed) client.write(chunk)
      }, delayMs)
    })
  })

  server.listen(0, "127.0.0.1")
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve)
    server.once("error", reject)
  })
  const address = server.address()
  if (address === null || typeof address === "string") throw new Error("expected a TCP address")
  const port = address.port

  return {
    host: "127.0.0.1",
    port,
    urlFor: (databaseUrl) => {
      const url = new URL(databaseUrl)
      url.hostname = "127.0.0.1"
      url.port = String(port)
      return url.toString()
    },
    pause: (mode = "refuse") => {
      paused = mode
      for (const socket of open) socket.destroy()
    },
    resume: () => {
      paused = undefined
      // Blackholed connections never got an upstream; end them so their clients retry.
      for (const socket of open) if (socket.isPaused()) socket.destroy()
    },
    holdReplies: () => {
      held ??= []
    },
    releaseReplies: () => {
      const waiting = held ?? []
      held = undefined
      for (const send of waiting) send()
    },
    setDelay: (ms) => {
      delayMs = ms
    },
    bytesFromClients: () => fromClients,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy()
        server.close(() => resolve())
      })
  }
}

/** The proxy for the length of a scope. */
export const TcpProxyScoped = (target: TcpProxyTarget, options: { readonly delayMs?: number } = {}) =>
  Effect.acquireRelease(
    Effect.promise(() => startTcpProxy(target, options)),
    (proxy) => Effect.promise(() => proxy.close())
  )
