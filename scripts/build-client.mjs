// Bundles the typed client (dist/client/index.js, ESM for browsers and Node) and the
// playground page (dist/playground/: app.js with the client and highlight.js, app.css,
// index.html), so the page needs no framework build. Run by `npm run build`.
import { build } from "esbuild"
import { copyFile, mkdir } from "node:fs/promises"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const common = { bundle: true, format: "esm", target: "es2022", sourcemap: true, logLevel: "warning", absWorkingDir: root }

await Promise.all([
  build({ ...common, entryPoints: ["src/client/index.ts"], outfile: "dist/client/index.js", platform: "neutral", mainFields: ["module", "main"] }),
  build({ ...common, entryPoints: ["src/playground/app.ts"], outfile: "dist/playground/app.js", platform: "browser", minify: true, sourcemap: false }),
  build({ ...common, entryPoints: ["src/playground/app.css"], outfile: "dist/playground/app.css", minify: true, sourcemap: false })
])
await mkdir(join(root, "dist/playground"), { recursive: true })
await copyFile(join(root, "src/playground/index.html"), join(root, "dist/playground/index.html"))
