import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import { readFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"

/** Built by `npm run build` (scripts/build-client.mjs); the same place from src/http and dist/http. */
const ASSETS = fileURLToPath(new URL("../../dist/playground/", import.meta.url))

/**
 * Strict: only this origin's files run or style the page (no inline script or style), the
 * page talks only to this origin (REST and its WebSocket), and nothing may frame it.
 */
export const PLAYGROUND_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join("; ")

const FILES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8"
}

const serve = (name: string) =>
  Effect.tryPromise(() => readFile(ASSETS + name)).pipe(
    Effect.map((body) =>
      HttpServerResponse.uint8Array(body, {
        contentType: FILES[name] ?? "application/octet-stream",
        headers: {
          "content-security-policy": PLAYGROUND_CSP,
          "x-content-type-options": "nosniff",
          "referrer-policy": "no-referrer",
          "cache-control": "no-cache"
        }
      })
    ),
    Effect.catchAll(() =>
      Effect.succeed(HttpServerResponse.text("The playground is not built: run `npm run build`.", { status: 503 }))
    )
  )

/** `GET /` (the page, also as `/?project=<id>`) and its two assets under `/playground/`. */
export const PlaygroundRoute = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function* () {
    yield* router.get("/", serve("index.html"))
    yield* router.get("/playground/app.js", serve("app.js"))
    yield* router.get("/playground/app.css", serve("app.css"))
  })
)
