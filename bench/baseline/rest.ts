/**
 * The REST baseline: the two reads of the service written by hand with `node:http` and `pg`
 * only (no Effect, no schemas): the rows as the driver parses them, mapped to the service's
 * JSON shapes and written with `JSON.stringify`. What a careful Node developer would write
 * first; the service is expected to beat it by letting PostgreSQL build the JSON.
 *
 * Environment: DATABASE_URL, PORT (0 = any free port), HOST. Prints `{"url":"http://HOST:PORT"}`
 * once listening; exits on SIGTERM/SIGINT. Like the relay, bench/run.ts transpiles it to plain
 * JavaScript and runs it with bare `node`.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import pg from "pg"

const env = process.env
const host = env["HOST"] ?? "127.0.0.1"
const pool = new pg.Pool({ connectionString: env["DATABASE_URL"], max: 20 })

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

interface ProjectRow {
  id: string
  title: string
  message_count: number
  created_at: Date
  updated_at: Date
}

interface MessageRow {
  id: string
  role: string
  content: string
  status: string
  code_blocks: ReadonlyArray<Record<string, unknown>>
  created_at: Date
}

const send = (res: http.ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  res.end(text)
}

const list = async (res: http.ServerResponse) => {
  const { rows } = await pool.query<ProjectRow>(
    "SELECT id, title, message_count, created_at, updated_at FROM projects ORDER BY updated_at DESC, id"
  )
  send(res, 200, {
    projects: rows.map((row) => ({
      id: row.id,
      title: row.title,
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
      messageCount: row.message_count
    }))
  })
}

const project = async (res: http.ServerResponse, id: string) => {
  const [projects, messages] = await Promise.all([
    pool.query<ProjectRow>("SELECT id, title, created_at, updated_at FROM projects WHERE id = $1", [id]),
    pool.query<MessageRow>(
      "SELECT id, role, content, status, code_blocks, created_at FROM messages WHERE project_id = $1 ORDER BY ordinal",
      [id]
    )
  ])
  const row = projects.rows[0]
  if (row === undefined) return send(res, 404, { error: "project not found", code: "PROJECT_NOT_FOUND" })
  send(res, 200, {
    id: row.id,
    title: row.title,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    messages: messages.rows.map((m) => ({
      id: m.id,
      role: m.role,
      content: m.content,
      status: m.status,
      ...(m.role === "assistant" ? { codeBlocks: m.code_blocks } : {}),
      createdAt: m.created_at.toISOString()
    }))
  })
}

const server = http.createServer((req, res) => {
  const path = (req.url ?? "/").split("?")[0] ?? "/"
  const handled = (async () => {
    if (req.method !== "GET") return send(res, 405, { error: "method not allowed", code: "NOT_FOUND" })
    if (path === "/health") return send(res, 200, { status: "healthy" })
    if (path === "/api/projects") return list(res)
    const match = /^\/api\/projects\/([^/]+)$/.exec(path)
    if (match !== null && UUID.test(match[1] ?? "")) return project(res, match[1] ?? "")
    send(res, 404, { error: "not found", code: "NOT_FOUND" })
  })()
  handled.catch((error: unknown) => {
    console.error(error)
    if (!res.headersSent) send(res, 500, { error: "internal server error", code: "INTERNAL_ERROR" })
  })
})

server.listen(Number(env["PORT"] ?? "0"), host, () => {
  const address = server.address() as AddressInfo
  process.stdout.write(`${JSON.stringify({ url: `http://${host}:${address.port}` })}\n`)
})

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    server.close()
    server.closeAllConnections()
    void pool.end().finally(() => process.exit(0))
  })
}
