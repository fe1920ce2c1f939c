import { NodeSdk } from "@effect/opentelemetry"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, Layer, Option } from "effect"
import { AppConfig } from "../Config.js"

/**
 * OpenTelemetry traces (OTLP over HTTP/JSON) when OTEL_EXPORTER_OTLP_ENDPOINT is set:
 * a span per HTTP request (the platform's), per chat answer, per Claude call and per SQL
 * query. Unset, no tracer is installed and spans cost next to nothing.
 */
export const TelemetryLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    Option.match(config.otlpEndpoint, {
      onNone: () => Layer.empty,
      onSome: (endpoint) =>
        NodeSdk.layer(() => ({
          resource: { serviceName: config.otelServiceName },
          spanProcessor: new BatchSpanProcessor(
            new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, "")}/v1/traces` })
          )
        }))
    })
  )
)
