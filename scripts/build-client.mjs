// Bundles the typed client (dist/client/index.js, ESM for browsers and Node) and the
// playground page (dist/playground/: app.js with the client and highlight.js, app.css,
// index.html), so the page needs no framework build. Run by `npm run build`.
// Files are written whole and renamed into place: a running service never reads half a file.
import { build } from "esbuild"
import { mkdir, readFile, rename, writeFile } from "node:fs/promises"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const common = { bundle: true, format: "esm", target: "es2022", logLevel: "warning", absWorkingDir: root, write: false }

const place = async (path, contents) => {
  await mkdir(dirname(path), { recursive: true })
  const temporary = `${path}.${process.pid}.tmp`
  await writeFile(temporary, contents)
  await rename(temporary, path)
}

const results = await Promise.all([
  build({ ...common, entryPoints: ["src/client/index.ts"], outfile: "dist/client/index.js", platform: "neutral", mainFields: ["module", "main"], sourcemap: true }),
  build({ ...common, entryPoints: ["src/playground/app.ts"], outfile: "dist/playground/app.js", platform: "browser", minify: true }),
  build({ ...common, entryPoints: ["src/playground/app.css"], outfile: "dist/playground/app.css", minify: true })
])
await Promise.all(results.flatMap((result) => result.outputFiles.map((file) => place(file.path, file.contents))))
await place(join(root, "dist/playground/index.html"), await readFile(join(root, "src/playground/index.html")))
