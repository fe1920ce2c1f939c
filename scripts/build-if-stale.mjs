// `npm start`'s prestart: compiles src/ to dist/ only when dist/ is missing or older than a
// source. tsc costs ~5 s; a start with nothing changed should not pay it. Plain JavaScript:
// it runs before anything is compiled.
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const mtime = (file) => {
  try {
    return Fs.statSync(file).mtimeMs
  } catch {
    return undefined
  }
}

/** Each `src/**.ts` with the `dist/**.js` tsc writes for it (tsc rewrites every output on each build). */
const sources = (Fs.readdirSync(Path.join(root, "src"), { recursive: true, withFileTypes: true }))
  .filter((entry) => entry.isFile() && entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts"))
  .map((entry) => Path.join(entry.parentPath ?? entry.path, entry.name))

const staleBecause = () => {
  const configs = ["tsconfig.json", "tsconfig.build.json", "package-lock.json"].map((file) => Path.join(root, file))
  const outputs = sources.map((source) => Path.join(root, "dist", Path.relative(Path.join(root, "src"), source)).replace(/\.ts$/, ".js"))
  let oldestOutput = Infinity
  for (const output of outputs) {
    const time = mtime(output)
    if (time === undefined) return `${Path.relative(root, output)} is missing`
    oldestOutput = Math.min(oldestOutput, time)
  }
  for (const input of [...sources, ...configs]) {
    if ((mtime(input) ?? 0) > oldestOutput) return `${Path.relative(root, input)} changed`
  }
  return undefined
}

const reason = staleBecause()
if (reason !== undefined) {
  process.stderr.write(`building dist/: ${reason}\n`)
  const tsc = Path.join(root, "node_modules", "typescript", "bin", "tsc")
  const result = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" })
  // A failed build may still have emitted files: make sure the next start tries again.
  if (result.status !== 0) Fs.rmSync(Path.join(root, "dist", "main.js"), { force: true })
  process.exit(result.status ?? 1)
}
