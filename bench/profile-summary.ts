/**
 * Aggregates a V8 `.cpuprofile` (from `node --cpu-prof`): self time by function and by
 * package/file, and inclusive time of the service's own functions (`dist/`, `src/`).
 *
 *   tsx bench/profile-summary.ts .data/bench-profiles/<file>.cpuprofile [top]
 */
import * as Fs from "node:fs"
import { pathToFileURL } from "node:url"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}

interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

export interface Row {
  readonly name: string
  readonly ms: number
  readonly percent: number
}

export interface ProfileSummary {
  readonly file: string
  readonly totalMs: number
  /** Sampled time less `(idle)`: percentages are of this. */
  readonly busyMs: number
  /** Self time by function (name + file:line). */
  readonly bySelf: ReadonlyArray<Row>
  /** Self time by package (node_modules/<pkg>), service file (dist/…) or Node internals. */
  readonly byPackage: ReadonlyArray<Row>
  /** Inclusive time of the service's own functions. */
  readonly serviceInclusive: ReadonlyArray<Row>
}

const shortUrl = (url: string): string => {
  if (url === "") return ""
  const path = url.replace(/^file:\/\//, "")
  const nm = path.lastIndexOf("/node_modules/")
  if (nm !== -1) return path.slice(nm + "/node_modules/".length)
  const dist = path.search(/\/(dist|src|bench|test)\//)
  return dist !== -1 ? path.slice(dist + 1) : path
}

const packageOf = (url: string): string => {
  const short = shortUrl(url)
  if (short === "") return "(native / V8)"
  if (short.startsWith("node:")) return "node: internals"
  if (/^(dist|src)\//.test(short)) return short
  const parts = short.split("/")
  return parts[0]?.startsWith("@") ? `${parts[0]}/${parts[1]}` : (parts[0] ?? short)
}

const isService = (url: string) => /^(dist|src)\//.test(shortUrl(url))

const keyOf = (frame: CallFrame) =>
  `${frame.functionName === "" ? "(anonymous)" : frame.functionName} ${shortUrl(frame.url)}${frame.url === "" ? "" : `:${frame.lineNumber + 1}`}`

const top = (map: Map<string, number>, total: number, count: number): ReadonlyArray<Row> =>
  [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, us]) => ({ name, ms: Math.round(us / 100) / 10, percent: Math.round((us / total) * 1000) / 10 }))

export const summarizeProfile = (file: string, count = 25): ProfileSummary => {
  const profile = JSON.parse(Fs.readFileSync(file, "utf8")) as CpuProfile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const self = new Map<number, number>()
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  let total = 0
  let idle = 0
  for (const [id, us] of self) {
    total += us
    if (byId.get(id)?.callFrame.functionName === "(idle)") idle += us
  }
  const busy = total - idle

  const bySelf = new Map<string, number>()
  const byPackage = new Map<string, number>()
  for (const [id, us] of self) {
    const frame = byId.get(id)?.callFrame
    if (frame === undefined) continue
    if (frame.functionName === "(idle)") continue
    const name = frame.functionName === "(program)" || frame.functionName === "(garbage collector)" ? frame.functionName : keyOf(frame)
    bySelf.set(name, (bySelf.get(name) ?? 0) + us)
    const pkg = frame.functionName.startsWith("(") && frame.url === "" ? frame.functionName : packageOf(frame.url)
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us)
  }

  // Inclusive time: a node's self time counts once for every distinct service function above it.
  const inclusive = new Map<string, number>()
  const root = profile.nodes[0]
  const stack: Array<{ node: ProfileNode; keys: ReadonlySet<string> }> = root === undefined ? [] : [{ node: root, keys: new Set() }]
  while (stack.length > 0) {
    const { node, keys } = stack.pop()!
    let here = keys
    if (isService(node.callFrame.url)) {
      const key = keyOf(node.callFrame)
      if (!keys.has(key)) here = new Set([...keys, key])
    }
    const us = self.get(node.id) ?? 0
    if (us > 0 && node.callFrame.functionName !== "(idle)") for (const key of here) inclusive.set(key, (inclusive.get(key) ?? 0) + us)
    for (const child of node.children ?? []) {
      const next = byId.get(child)
      if (next !== undefined) stack.push({ node: next, keys: here })
    }
  }

  return {
    file,
    totalMs: Math.round(total / 1000),
    busyMs: Math.round(busy / 1000),
    bySelf: top(bySelf, busy, count),
    byPackage: top(byPackage, busy, count),
    serviceInclusive: top(inclusive, busy, count)
  }
}

export const formatSummary = (summary: ProfileSummary): string => {
  const section = (title: string, rows: ReadonlyArray<Row>) =>
    [title, ...rows.map((row) => `  ${row.percent.toFixed(1).padStart(5)}%  ${row.ms.toFixed(0).padStart(7)} ms  ${row.name}`)].join("\n")
  return [
    `profile ${summary.file}: ${summary.totalMs} ms sampled, ${summary.busyMs} ms busy (percentages are of busy time)`,
    section("self time by function:", summary.bySelf),
    section("self time by package / file:", summary.byPackage),
    section("inclusive time of the service's functions:", summary.serviceInclusive)
  ].join("\n\n")
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
if (isMain) {
  const file = process.argv[2]
  if (file === undefined) {
    console.error("usage: tsx bench/profile-summary.ts <file.cpuprofile> [top]")
    process.exit(2)
  }
  console.log(formatSummary(summarizeProfile(file, Number(process.argv[3] ?? "25"))))
}
