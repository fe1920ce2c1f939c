// Rewrites `import { Effect, Layer } from "effect"` (and the same from the @effect/* packages)
// into one subpath import per module: `import * as Effect from "effect/Effect"`. A barrel
// import loads every module of its package at startup (the effect barrel alone ~160
// modules; @effect/platform's includes the Swagger UI bundle; @effect/platform-node's loads
// @effect/cluster and @effect/rpc). Idempotent; run it after a merge brings barrel imports
// back: `node scripts/subpath-imports.mjs [dir...]` (default: src).
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"

const PACKAGES = ["effect", "@effect/platform", "@effect/platform-node", "@effect/sql", "@effect/sql-pg", "@effect/experimental"]
const IMPORT = new RegExp(`import\\s+(type\\s+)?\\{([^}]*)\\}\\s+from\\s+"(${PACKAGES.map((p) => p.replace("/", "\\/")).join("|")})"`, "g")

const rewrite = (source) =>
  source.replace(IMPORT, (_whole, typeOnly, names, pkg) =>
    names
      .split(",")
      .map((name) => name.trim())
      .filter((name) => name.length > 0)
      .map((name) => {
        const match = /^(type\s+)?([A-Za-z0-9_]+)(?:\s+as\s+([A-Za-z0-9_]+))?$/.exec(name)
        if (match === null) throw new Error(`cannot rewrite import of "${name}" from ${pkg}`)
        const [, typeName, module, alias] = match
        const type = typeOnly !== undefined || typeName !== undefined ? "type " : ""
        return `import ${type}* as ${alias ?? module} from "${pkg}/${module}"`
      })
      .join("\n")
  )

const files = (dir) =>
  readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry)
    return statSync(path).isDirectory() ? files(path) : /\.tsx?$/.test(entry) ? [path] : []
  })

let changed = 0
for (const dir of process.argv.length > 2 ? process.argv.slice(2) : ["src"]) {
  for (const file of files(dir)) {
    const before = readFileSync(file, "utf8")
    const after = rewrite(before)
    if (after !== before) {
      writeFileSync(file, after)
      changed += 1
    }
  }
}
console.log(`subpath imports: ${changed} file(s) rewritten`)
