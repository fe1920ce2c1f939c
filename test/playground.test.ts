/**
 * The playground page in a real browser: Debian's headless Chromium driven by
 * playwright-core, against the real service answered by a stepped fake Claude (so "in the
 * middle of an answer" is a state the test holds, not a moment it hopes to hit).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { type BrowserContext, chromium, type Page } from "playwright-core"
import { PLAYGROUND_CSP } from "../src/http/Playground.js"
import { claudeEnv, eventually, newProject, storedMessages } from "./support/ChatApp.js"
import { get } from "./support/Http.js"
import { SteppedAnthropicScoped } from "./support/SteppedAnthropic.js"
import { startTestApp } from "./support/TestApp.js"

const CHROMIUM = "/usr/bin/chromium"
const hasChromium = existsSync(CHROMIUM)
if (!hasChromium) console.warn(`playground browser test skipped: ${CHROMIUM} is missing (apt-get install -y chromium)`)

const UI_TIMEOUT_MS = 15_000
let context: BrowserContext | undefined
let userDataDir: string | undefined

beforeAll(async () => {
  // The page's bundle, exactly as `npm run build` makes it.
  await promisify(execFile)(process.execPath, ["scripts/build-client.mjs"])
  if (!hasChromium) return
  userDataDir = await mkdtemp(join(tmpdir(), "playground-chromium-"))
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1200, height: 760 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
  })
}, 120_000)

afterAll(async () => {
  await context?.close()
  if (userDataDir !== undefined) await rm(userDataDir, { recursive: true, force: true })
})

/** A new tab that records console errors and uncaught page errors. */
const openPage = async (): Promise<{ page: Page; errors: Array<string> }> => {
  if (context === undefined) throw new Error("no browser")
  const page = await context.newPage()
  page.setDefaultTimeout(UI_TIMEOUT_MS)
  const errors: Array<string> = []
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text())
  })
  page.on("pageerror", (error) => errors.push(error.message))
  return { page, errors }
}

const connected = (page: Page) => page.waitForSelector("#connection[data-state=open]")

describe("the page is served with a strict Content-Security-Policy", () => {
  it.scopedLive("GET / and its assets carry the CSP: no inline scripts or styles, same origin only", () =>
    Effect.gen(function* () {
      const app = yield* startTestApp()
      const page = yield* get(`${app.url}/?project=00000000-0000-4000-8000-000000000000`)
      expect(page.status).toBe(200)
      expect(page.headers.get("content-type")).toContain("text/html")
      expect(page.headers.get("content-security-policy")).toBe(PLAYGROUND_CSP)
      expect(PLAYGROUND_CSP).toContain("script-src 'self'")
      expect(PLAYGROUND_CSP).not.toContain("unsafe")
      expect(page.text).not.toMatch(/<script(?![^>]*\bsrc=)/)
      expect(page.text).not.toMatch(/\sstyle=|<style/)
      const script = yield* get(`${app.url}/playground/app.js`)
      expect(script.status).toBe(200)
      expect(script.headers.get("content-type")).toContain("javascript")
      const styles = yield* get(`${app.url}/playground/app.css`)
      expect(styles.text).toContain(".hljs")
      // Only the page's own files are served: anything else under /playground/ is an unknown route.
      const other = yield* get(`${app.url}/playground/../package.json`)
      expect(other.status).toBe(404)
      expect((yield* get(`${app.url}/playground/app.js.map`)).status).toBe(404)
    }))
})

describe.skipIf(!hasChromium)("the playground in headless Chromium", () => {
  it.scopedLive("open by link, send, stream with a highlighted code block, generated title, reload mid-answer, Stop → cancelled", () =>
    Effect.gen(function* () {
      const stepped = yield* SteppedAnthropicScoped
      const app = yield* startTestApp(claudeEnv(stepped))
      const project = yield* newProject(app)
      const { page, errors } = yield* Effect.promise(() => openPage())
      yield* Effect.addFinalizer(() => Effect.promise(() => page.close()))
      const ui = <A>(run: () => Promise<A>) => Effect.promise(run)

      // Open by link; Shift+Enter is a new line and sends nothing.
      yield* ui(() => page.goto(`${app.url}/?project=${project.id}`))
      yield* ui(() => connected(page))
      // No AUTH_TOKEN on this service: the page never asks for one.
      expect(yield* ui(() => page.locator("#auth").isVisible())).toBe(false)
      yield* ui(() => page.locator("#input").pressSequentially("Write hello world"))
      yield* ui(() => page.keyboard.press("Shift+Enter"))
      yield* ui(() => page.locator("#input").pressSequentially("in Python, please"))
      expect(yield* ui(() => page.locator("#input").inputValue())).toBe("Write hello world\nin Python, please")
      expect(yield* ui(() => page.locator(".message").count())).toBe(0)

      // Enter sends; the answer streams in.
      yield* ui(() => page.keyboard.press("Enter"))
      const stream = yield* Effect.promise(() => stepped.nextStream())
      yield* Effect.promise(() => stream.emit("Here is the program:\n\n"))
      yield* ui(() => page.waitForSelector(".message.assistant[data-status=streaming] >> text=Here is the program:"))
      yield* ui(() => page.waitForSelector("#stop:not([hidden])"))

      // Reload in the middle of the answer: the page rejoins it and sees it finish.
      yield* ui(() => page.reload())
      yield* ui(() => connected(page))
      yield* Effect.promise(() => stream.emit("```python\nprint(\"hello, world\")\n```\n"))
      yield* Effect.promise(() => stream.emit("Run it with python3."))
      yield* Effect.promise(() => stream.finish())
      const answer = page.locator(".message.assistant[data-status=complete]")
      yield* ui(() => answer.waitFor())
      const [stored] = (yield* storedMessages(app, project.id)).filter((row) => row.role === "assistant")
      expect(stored?.status).toBe("complete")
      expect((yield* ui(() => answer.locator(".body").innerText())).replace(/\s+/g, " ").trim())
        .toBe((stored?.content ?? "").replace(/```python|```/g, "").replace(/\s+/g, " ").trim())
      expect(yield* ui(() => answer.locator(".status").innerText())).toContain("resumed")
      // Highlighted by highlight.js as Python: `print` is a built-in, the string a string.
      yield* ui(() => answer.locator("pre code.hljs.language-python .hljs-built_in", { hasText: "print" }).waitFor())
      yield* ui(() => answer.locator("pre code.hljs.language-python .hljs-string").first().waitFor())

      // The generated title, in the heading and the project list.
      yield* ui(() => page.waitForSelector("#chat-title >> text=Stepped Title"))
      yield* ui(() => page.waitForSelector(`#projects li[data-project-id="${project.id}"] >> text=Stepped Title`))
      yield* ui(() => page.screenshot({ path: "docs/playground.png" }))

      // Stop: the answer is stored as cancelled and shown so.
      yield* ui(() => page.locator("#input").fill("Now something long"))
      yield* ui(() => page.locator("#input").press("Enter"))
      const second = yield* Effect.promise(() => stepped.nextStream())
      yield* Effect.promise(() => second.emit("This will take a while"))
      yield* ui(() => page.waitForSelector(".message.assistant[data-status=streaming] >> text=This will take a while"))
      yield* ui(() => page.locator("#stop").click())
      yield* ui(() => page.waitForSelector(".message.assistant[data-status=cancelled]"))
      const rows = yield* eventually("the second answer is stored cancelled", storedMessages(app, project.id), (rows) => rows[3]?.status === "cancelled")
      expect(rows.map((row) => row.role)).toEqual(["user", "assistant", "user", "assistant"])
      expect(rows[2]?.content).toBe("Now something long")
      expect(rows[0]?.content).toBe("Write hello world\nin Python, please")
      // A stopped answer can be continued: the button offers it.
      yield* ui(() => page.waitForSelector("#continue:not([hidden])"))
      expect(errors).toEqual([])
    }), 120_000)

  it.scopedLive("works with the offline demo model (a fresh machine): the answer completes and its code block is highlighted", () =>
    Effect.gen(function* () {
      const app = yield* startTestApp({ SHUTDOWN_GRACE_SECONDS: "1" })
      const project = yield* newProject(app)
      const { page, errors } = yield* Effect.promise(() => openPage())
      yield* Effect.addFinalizer(() => Effect.promise(() => page.close()))
      const ui = <A>(run: () => Promise<A>) => Effect.promise(run)
      yield* ui(() => page.goto(`${app.url}/?project=${project.id}`))
      yield* ui(() => connected(page))
      yield* ui(() => page.locator("#input").fill("Build me a todo app in TypeScript"))
      yield* ui(() => page.locator("#send").click())
      yield* ui(() => page.waitForSelector(".message.assistant[data-status=complete] pre code.hljs.language-typescript .hljs-keyword"))
      const [stored] = (yield* storedMessages(app, project.id)).filter((row) => row.role === "assistant")
      expect(stored?.status).toBe("complete")
      expect(stored?.content).toContain("```typescript")
      expect(errors).toEqual([])
    }), 120_000)

  it.scopedLive("projects: create, rename and delete from the list", () =>
    Effect.gen(function* () {
      const app = yield* startTestApp()
      const { page, errors } = yield* Effect.promise(() => openPage())
      yield* Effect.addFinalizer(() => Effect.promise(() => page.close()))
      const ui = <A>(run: () => Promise<A>) => Effect.promise(run)
      yield* ui(() => page.goto(app.url))
      yield* ui(() => page.locator("#new-project").click())
      yield* ui(() => connected(page))
      const [created] = yield* app.sql<{ id: string }>`SELECT id::text AS id FROM projects`
      expect(page.url()).toBe(`${app.url}/?project=${created?.id}`)
      page.once("dialog", (dialog) => void dialog.accept("Renamed here"))
      yield* ui(() => page.locator("#projects .rename").click())
      yield* ui(() => page.waitForSelector("#projects >> text=Renamed here"))
      const [renamed] = yield* app.sql<{ title: string }>`SELECT title FROM projects`
      expect(renamed?.title).toBe("Renamed here")
      page.once("dialog", (dialog) => void dialog.accept())
      yield* ui(() => page.locator("#projects .delete").click())
      yield* ui(() => page.waitForSelector("#projects li", { state: "detached" }))
      expect(yield* app.sql`SELECT id FROM projects`).toHaveLength(0)
      expect(errors).toEqual([])
    }), 120_000)
})
