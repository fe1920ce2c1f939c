import { Effect, Layer, ConfigProvider, Context } from "effect"
import { HttpServer } from "@effect/platform"
import * as Http from "node:http"
import { AppLive } from "/work/main/src/App.js"

const main = Effect.gen(function* () {
  const config = ConfigProvider.fromMap(new Map(Object.entries({ HOST: "127.0.0.1", PORT: "0", LOG_LEVEL: "debug", DATABASE_URL: "postgres://root@127.0.0.1:5432/scratch_helper", MAX_BODY_BYTES: "1024", SHUTDOWN_GRACE_SECONDS: "2" })))
  const ctx = yield* Layer.build(AppLive.pipe(Layer.provide(Layer.setConfigProvider(config))))
  const address = Context.get(ctx, HttpServer.HttpServer).address
  const port = address._tag === "TcpAddress" ? address.port : 0
  yield* Effect.promise(() => new Promise<void>((resolve) => {
    const req = Http.request(`http://127.0.0.1:${port}/api/projects`, { method: "POST", headers: { "content-type": "application/json" } })
    req.on("response", (res) => { console.error("status", res.statusCode, res.headers); res.on("data", (d) => console.error("data", String(d))); res.on("end", () => { console.error("end"); resolve() }) })
    req.on("error", (e) => { console.error("req error", e); resolve() })
    req.setHeader("transfer-encoding", "chunked")
    req.write("{\"title\":\"t\",\"padding\":\"")
    for (let i = 0; i < 8; i++) req.write("x")
    req.write("\"}")
    req.end()
    setTimeout(() => { console.error("client timeout"); resolve() }, 4000)
  }))
  console.error("closing scope")
})
Effect.runPromise(Effect.scoped(main)).then(() => console.error("done"), (e) => console.error("fail", e))
