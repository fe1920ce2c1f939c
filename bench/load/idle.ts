/**
 * Load generator for the idle scenario, run as a child of bench/run.ts (IPC): opens
 * `sockets` WebSockets over `urls` (round robin), reports `{type:"opened"}`, keeps them open
 * (answering the server's protocol pings, as browsers do) until `{type:"close"}` or its own
 * deadline, then reports `{type:"result"}` and exits.
 */
import WebSocket from "ws"

export interface IdleConfig {
  readonly urls: ReadonlyArray<string>
  readonly sockets: number
  readonly concurrency: number
  /** From `run`: the child closes everything and exits by itself after this. */
  readonly deadlineMs: number
}

export interface IdleResult {
  readonly opened: number
  readonly failed: number
  readonly pingsReceived: number
  readonly closedByServer: number
  readonly errors: ReadonlyArray<string>
}

const send = (message: unknown) =>
  new Promise<void>((resolve) => {
    if (process.send === undefined) return resolve()
    process.send(message, () => resolve())
  })

process.once("disconnect", () => process.exit(0))

const run = async (config: IdleConfig) => {
  const killer = setTimeout(() => process.exit(2), config.deadlineMs)
  killer.unref()
  const sockets: Array<WebSocket> = []
  const errors: Array<string> = []
  let failed = 0
  let pingsReceived = 0
  let closedByServer = 0
  let closing = false
  const closeRequested = new Promise<void>((resolve) =>
    process.on("message", (message: { type?: unknown }) => {
      if (message.type === "close") resolve()
    })
  )

  let next = 0
  const open = (url: string) =>
    new Promise<void>((resolve) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 20_000 })
      ws.once("open", () => {
        sockets.push(ws)
        resolve()
      })
      ws.on("ping", () => {
        pingsReceived += 1
      })
      ws.on("close", () => {
        if (!closing) closedByServer += 1
      })
      ws.on("error", (error) => {
        failed += 1
        if (errors.length < 10) errors.push(error.message)
        resolve()
      })
    })
  const worker = async () => {
    while (next < config.sockets) {
      const index = next++
      await open(config.urls[index % config.urls.length]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(config.concurrency, config.sockets) }, worker))
  await send({ type: "opened", opened: sockets.length, failed })
  await closeRequested
  closing = true
  const result: IdleResult = { opened: sockets.length, failed, pingsReceived, closedByServer, errors }
  for (const ws of sockets) ws.terminate()
  await send({ type: "result", result })
}

process.once("message", (message: { type?: unknown; config?: unknown }) => {
  if (message.type !== "run") process.exit(1)
  run(message.config as IdleConfig).then(
    () => process.exit(0),
    () => process.exit(1)
  )
})
