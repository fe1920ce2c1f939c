import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"

/**
 * The Swagger UI bundle inside @effect/platform (2 MB of source). `HttpApiSwagger.layer`
 * imports it, and builds its page, at every start; here it is loaded by the first
 * `GET /docs` only. Its module is not exported by the package: it is found beside the one
 * that is (the version is pinned).
 */
const SwaggerAssets = Schema.Struct({ css: Schema.String, javascript: Schema.String })
const loadSwaggerAssets = Effect.try(() => {
  const require = createRequire(import.meta.url)
  return require(join(dirname(require.resolve("@effect/platform/HttpApiSwagger")), "internal", "httpApiSwagger.js"))
}).pipe(Effect.flatMap(Schema.decodeUnknown(SwaggerAssets)))

// What `HttpApiSwagger` does to keep the spec inside its <script> and the title inside <title>.
const escapeHtml = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
const scriptJson = (value: unknown) =>
  JSON.stringify(value).replace(/</g, "\\u003c").replace(/[\u2028\u2029]/g, (c) => (c === "\u2028" ? "\\u2028" : "\\u2029"))

/** `GET /docs`: the Swagger UI page of the OpenAPI document, the same page `HttpApiSwagger` serves. */
export const DocsRoute = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function* () {
    const { api } = yield* HttpApi.Api
    const spec = OpenApi.fromApi(api)
    // The page is built for each request (the page is rare; 2 MB kept for ever is not).
    const page = Effect.map(loadSwaggerAssets, ({ css, javascript }) =>
      HttpServerResponse.text(
        `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8" />
  <meta name="viewport" content="width=device-width, initial-scale=1" />
  <title>${escapeHtml(spec.info.title)} Documentation</title>
  <style>${css}</style>
</head>
<body>
  <div id="swagger-ui"></div>
  <script id="swagger-spec" type="application/json">
    ${scriptJson(spec)}
  </script>
  <script>
    ${javascript}
    window.onload = () => {
      window.ui = SwaggerUIBundle({
        spec: JSON.parse(document.getElementById("swagger-spec").textContent),
        dom_id: '#swagger-ui',
      });
    };
  </script>
</body>
</html>`,
        { contentType: "text/html" }
      )
    )
    yield* router.get("/docs", Effect.orDie(page))
  })
)
