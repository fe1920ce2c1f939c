import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { startEmbeddedPostgres } from "../src/db/EmbeddedPostgres.js"
import { freePort } from "./support/FreePort.js"

const isRoot = process.getuid?.() === 0

describe("embedded PostgreSQL in a private folder", () => {
  // As root, PostgreSQL runs as "postgres"; a checkout under a mode-700 folder (mktemp -d,
  // /root) would block it. Only root can meet this situation, so only root runs it.
  it.scopedLive.runIf(isRoot)("starts even when the data folder's parent is private (mode 700), granting only o+x (only as root: PostgreSQL then runs as another user)", () =>
    Effect.gen(function* () {
      const privateDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "gochat-private-"))
      Fs.chmodSync(privateDir, 0o700)
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(privateDir, { recursive: true, force: true })))
      // A port free now (a fixed one may be another connection's ephemeral port).
      const port = yield* Effect.promise(freePort)
      const started = yield* Effect.scoped(
        startEmbeddedPostgres({ dataDir: Path.join(privateDir, "data"), port, database: "access_test" }).pipe(Effect.as(true))
      )
      expect(started).toBe(true)
      // Search permission for others, nothing more: still not listable or readable by them.
      expect(Fs.statSync(privateDir).mode & 0o777).toBe(0o701)
    }), 60_000)
})
