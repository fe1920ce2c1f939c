import { Effect } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

/** One span as OTLP/HTTP JSON carries it (the fields these tests read). */
export interface ReceivedSpan {
  readonly name: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly attributes: Readonly<Record<string, string | number | boolean>>
}

interface OtlpValue {
  readonly stringValue?: string
  readonly intValue?: string | number
  readonly doubleValue?: number
  readonly boolValue?: boolean
}

interface OtlpSpan {
  readonly name: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly attributes?: ReadonlyArray<{ readonly key: string; readonly value: OtlpValue }>
}

interface OtlpExport {
  readonly resourceSpans?: ReadonlyArray<{ readonly scopeSpans?: ReadonlyArray<{ readonly spans?: ReadonlyArray<OtlpSpan> }> }>
}

const valueOf = (value: OtlpValue): string | number | boolean =>
  value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : value.doubleValue ?? value.boolValue ?? "")

/** A local OTLP/HTTP trace receiver on 127.0.0.1: collects every exported span. */
export const OtlpReceiver = Effect.acquireRelease(
  Effect.async<{
    readonly url: string
    readonly spans: Array<ReceivedSpan>
    /** Requests received on any path (an export to an unexpected path counts too). */
    readonly exports: number
    readonly server: http.Server
  }>((resume) => {
    const spans: Array<ReceivedSpan> = []
    let exports = 0
    const server = http.createServer((request, response) => {
      exports++
      let body = ""
      request.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")))
      request.on("end", () => {
        if (request.url === "/v1/traces") {
          const parsed = JSON.parse(body) as OtlpExport
          for (const resource of parsed.resourceSpans ?? []) {
            for (const scope of resource.scopeSpans ?? []) {
              for (const span of scope.spans ?? []) {
                spans.push({
                  name: span.name,
                  traceId: span.traceId,
                  spanId: span.spanId,
                  parentSpanId: span.parentSpanId === "" ? undefined : span.parentSpanId,
                  attributes: Object.fromEntries((span.attributes ?? []).map((a) => [a.key, valueOf(a.value)]))
                })
              }
            }
          }
        }
        response.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(
        Effect.succeed({
          url: `http://127.0.0.1:${port}`,
          spans,
          get exports() {
            return exports
          },
          server
        })
      )
    })
  }),
  ({ server }) => Effect.promise(() => new Promise<void>((done) => server.close(() => done())))
)
