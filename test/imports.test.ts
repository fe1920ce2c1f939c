/**
 * Issue 13, startup: a barrel import (`from "effect"`, `from "@effect/platform"`, ...) loads
 * every module of its package when the service starts (~25 MB of RSS and ~20 % of the
 * startup CPU, measured). `node scripts/subpath-imports.mjs` rewrites them.
 */
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"

const BARREL = /from\s+"(effect|@effect\/(platform|platform-node|sql|sql-pg|experimental))"/

const sources = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry)
    return statSync(path).isDirectory() ? sources(path) : path.endsWith(".ts") ? [path] : []
  })

describe("startup cost", () => {
  it("src imports Effect's packages by module, never through their barrels", () => {
    const offenders = sources("src").filter((file) => BARREL.test(readFileSync(file, "utf8")))
    expect(offenders).toEqual([])
  })
})
