import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { AppConfig } from "../Config.js"

/** Loaded only when tracing is on: the OpenTelemetry SDK adds about 100 ms to startup. */
const otlpTracing = (endpoint: string, serviceName: string) =>
  Layer.unwrapEffect(
    Effect.promise(async () => {
      const [{ NodeSdk }, { OTLPTraceExporter }, { BatchSpanProcessor }] = await Promise.all([
        import("@effect/opentelemetry"),
        import("@opentelemetry/exporter-trace-otlp-http"),
        import("@opentelemetry/sdk-trace-base")
      ])
      return NodeSdk.layer(() => ({
        resource: { serviceName },
        spanProcessor: new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, "")}/v1/traces` }))
      }))
    })
  )

/**
 * OpenTelemetry traces (OTLP over HTTP/JSON) when OTEL_EXPORTER_OTLP_ENDPOINT is set:
 * a span per HTTP request (the platform's), per chat answer, per Claude call and per SQL
 * query. Unset, no tracer is installed and spans cost next to nothing.
 */
export const TelemetryLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    Option.match(config.otlpEndpoint, {
      onNone: () => Layer.empty,
      onSome: (endpoint) => otlpTracing(endpoint, config.otelServiceName)
    })
  )
)
