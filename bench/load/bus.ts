/**
 * The bus between two instances (`BENCH_ONLY=bus`): two `PgBus` layers in this process, each with
 * its own connection, on the database at BUS_BENCH_URL. A publishes, B listens. Measured:
 *
 * - burst: N small messages published at once (a window of outstanding publishes), notifications
 *   per second from the first publish to the last receipt, and the latency of each;
 * - paced: messages at a steady rate well under the maximum, latency p50/p99 (what a chunk
 *   batch of an answer costs in delay from one instance to another);
 * - large: 50 KB payloads (7 notifications each), MB/s.
 *
 * Both ends share this process's event loop and clock: latencies are send → receipt on one
 * clock; CPU is of both ends together. The result is sent over IPC (or printed when run alone).
 */
import { Context, Effect, Layer, Redacted } from "effect"
import { Bus, type BusShape } from "../../src/cluster/Bus.js"
import { PgBusLive } from "../../src/cluster/PgBus.js"
import { DatabaseUrl } from "../../src/db/Database.js"
import { type Distribution, distribution, round } from "../lib/stats.js"

export interface BusBenchConfig {
  readonly burst: number
  readonly window: number
  readonly pacedPerSecond: number
  readonly pacedSeconds: number
  readonly large: number
}

export interface BusBenchResult {
  readonly burst: { readonly messages: number; readonly perSecond: number; readonly latencyMs: Distribution; readonly cpuUsPerMessage: number }
  readonly paced: { readonly messages: number; readonly perSecond: number; readonly latencyMs: Distribution; readonly cpuUsPerMessage: number }
  readonly large: { readonly messages: number; readonly payloadBytes: number; readonly megabytesPerSecond: number; readonly latencyMs: Distribution }
  readonly intact: boolean
}

const url = process.env["BUS_BENCH_URL"] ?? ""
const config: BusBenchConfig = process.env["BUS_BENCH_QUICK"] === "1"
  ? { burst: 5_000, window: 500, pacedPerSecond: 500, pacedSeconds: 2, large: 40 }
  : { burst: 50_000, window: 1_000, pacedPerSecond: 1_000, pacedSeconds: 5, large: 200 }

const startBus = Layer.build(PgBusLive.pipe(Layer.provide(Layer.succeed(DatabaseUrl, Redacted.make(url))))).pipe(
  Effect.map((context) => Context.get(context, Bus))
)

const cpuUs = () => {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

/** Receipts on B: each payload starts with its index; latency from the send time recorded for it. */
const receiver = (expected: number) => {
  const sentAt = new Float64Array(expected)
  const latency = new Float64Array(expected)
  let received = 0
  let inOrder = true
  let resolve: () => void = () => undefined
  const done = new Promise<void>((r) => (resolve = r))
  return {
    sentAt,
    done,
    onMessage: (payload: string) => {
      const index = Number.parseInt(payload, 10)
      if (index !== received) inOrder = false
      latency[received] = performance.now() - sentAt[index]!
      received++
      if (received === expected) resolve()
    },
    latency: () => distribution(latency.subarray(0, received)),
    intact: () => inOrder && received === expected
  }
}

const burst = (a: BusShape, b: BusShape, count: number, window: number, padding: string) =>
  Effect.gen(function* () {
    const sink = receiver(count)
    yield* b.listen("bench_burst", { onMessage: sink.onMessage })
    const cpuBefore = cpuUs()
    const startedAt = performance.now()
    yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) => Effect.suspend(() => {
        sink.sentAt[i] = performance.now()
        return a.publish("bench_burst", `${i}:${padding}`)
      }),
      { concurrency: window, discard: true }
    )
    yield* Effect.promise(() => sink.done)
    const seconds = (performance.now() - startedAt) / 1000
    return { messages: count, perSecond: round(count / seconds, 0), latencyMs: sink.latency(), cpuUsPerMessage: round((cpuUs() - cpuBefore) / count, 1), intact: sink.intact() }
  }).pipe(Effect.scoped)

const paced = (a: BusShape, b: BusShape, perSecond: number, seconds: number, padding: string) =>
  Effect.gen(function* () {
    const count = perSecond * seconds
    const sink = receiver(count)
    yield* b.listen("bench_paced", { onMessage: sink.onMessage })
    const cpuBefore = cpuUs()
    const startedAt = performance.now()
    // Ticks of 10 ms, each publishing what is due by then: a steady rate without a timer per message.
    let sent = 0
    while (sent < count) {
      const due = Math.min(count, Math.floor(((performance.now() - startedAt) / 1000) * perSecond))
      for (; sent < due; sent++) {
        sink.sentAt[sent] = performance.now()
        yield* Effect.forkDaemon(Effect.orDie(a.publish("bench_paced", `${sent}:${padding}`)))
      }
      yield* Effect.sleep("10 millis")
    }
    yield* Effect.promise(() => sink.done)
    const elapsed = (performance.now() - startedAt) / 1000
    return { messages: count, perSecond: round(count / elapsed, 0), latencyMs: sink.latency(), cpuUsPerMessage: round((cpuUs() - cpuBefore) / count, 1), intact: sink.intact() }
  }).pipe(Effect.scoped)

const large = (a: BusShape, b: BusShape, count: number) =>
  Effect.gen(function* () {
    const body = "é€a".repeat(8_500) // 51,000 bytes
    const sink = receiver(count)
    let intactBodies = true
    yield* b.listen("bench_large", {
      onMessage: (payload) => {
        if (payload.slice(payload.indexOf(":") + 1) !== body) intactBodies = false
        sink.onMessage(payload)
      }
    })
    const startedAt = performance.now()
    yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) => Effect.suspend(() => {
        sink.sentAt[i] = performance.now()
        return a.publish("bench_large", `${i}:${body}`)
      }),
      { concurrency: 20, discard: true }
    )
    yield* Effect.promise(() => sink.done)
    const seconds = (performance.now() - startedAt) / 1000
    const payloadBytes = Buffer.byteLength(body, "utf8")
    return { messages: count, payloadBytes, megabytesPerSecond: round((count * payloadBytes) / 1e6 / seconds, 1), latencyMs: sink.latency(), intact: sink.intact() && intactBodies }
  }).pipe(Effect.scoped)

const run = Effect.gen(function* () {
  const a = yield* startBus
  const b = yield* startBus
  // A chunk batch of an answer as the chat would send it: a couple of hundred bytes of JSON.
  const padding = JSON.stringify({ type: "chunk", messageId: "0b6f4c4e-5a39-4d51-9a4f-8f0c1e7f3a11", seq: 1, offset: 0, text: "x".repeat(120) })
  const burstRun = yield* burst(a, b, config.burst, config.window, padding)
  const pacedRun = yield* paced(a, b, config.pacedPerSecond, config.pacedSeconds, padding)
  const largeRun = yield* large(a, b, config.large)
  const { intact: burstIntact, ...burstResult } = burstRun
  const { intact: pacedIntact, ...pacedResult } = pacedRun
  const { intact: largeIntact, ...largeResult } = largeRun
  return { burst: burstResult, paced: pacedResult, large: largeResult, intact: burstIntact && pacedIntact && largeIntact } satisfies BusBenchResult
}).pipe(Effect.scoped, Effect.orDie)

Effect.runPromise(run).then(
  (result) => {
    if (process.send === undefined) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
      process.exit(0)
    }
    process.send({ type: "result", result }, () => process.exit(0))
  },
  (error: unknown) => {
    process.stderr.write(`bus bench failed: ${String(error)}\n`)
    process.send?.({ type: "failed", error: String(error) })
    process.exit(1)
  }
)
