import type { IncomingHttpHeaders } from "node:http"

/** Response headers a browser script may read: the request id (for support) and the tag (for conditional GETs). */
export const EXPOSED_HEADERS = ["x-request-id", "etag"] as const

/** The platform's CORS middleware options for CORS_ORIGINS (empty: any origin). */
export const corsOptions = (corsOrigins: ReadonlyArray<string>) => ({
  ...(corsOrigins.length > 0 ? { allowedOrigins: corsOrigins } : {}),
  exposedHeaders: [...EXPOSED_HEADERS]
})

/**
 * The CORS headers of a non-preflight response, exactly as the platform's middleware writes
 * them for `corsOptions(corsOrigins)`; for the reads answered without it (`FastReads`).
 */
export const corsHeadersFor = (corsOrigins: ReadonlyArray<string>) => {
  const exposed = { "access-control-expose-headers": EXPOSED_HEADERS.join(",") }
  if (corsOrigins.length === 0) {
    const any = { "access-control-allow-origin": "*", ...exposed }
    return (_: IncomingHttpHeaders): Record<string, string> => any
  }
  if (corsOrigins.length === 1) {
    const only = { "access-control-allow-origin": corsOrigins[0] ?? "", vary: "Origin", ...exposed }
    return (_: IncomingHttpHeaders): Record<string, string> => only
  }
  return (headers: IncomingHttpHeaders): Record<string, string> => {
    const origin = headers.origin
    return origin !== undefined && corsOrigins.includes(origin)
      ? { "access-control-allow-origin": origin, vary: "Origin", ...exposed }
      : exposed
  }
}
