/**
 * Aggregates a V8 `.heapsnapshot` (e.g. from `node --heapsnapshot-signal=SIGUSR2`): self size
 * and count by constructor / node name, largest first.
 *
 *   tsx bench/heap-summary.ts <file.heapsnapshot> [top]
 */
import * as Fs from "node:fs"
import { pathToFileURL } from "node:url"

interface HeapSnapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: ReadonlyArray<string>; readonly node_types: ReadonlyArray<ReadonlyArray<string> | string> } }
  readonly nodes: ReadonlyArray<number>
  readonly strings: ReadonlyArray<string>
}

export interface HeapRow {
  readonly name: string
  readonly count: number
  readonly selfMb: number
}

export const summarizeHeap = (file: string, count = 30): { readonly totalMb: number; readonly rows: ReadonlyArray<HeapRow> } => {
  const heap = JSON.parse(Fs.readFileSync(file, "utf8")) as HeapSnapshot
  const fields = heap.snapshot.meta.node_fields
  const types = heap.snapshot.meta.node_types[0] as ReadonlyArray<string>
  const width = fields.length
  const typeAt = fields.indexOf("type")
  const nameAt = fields.indexOf("name")
  const sizeAt = fields.indexOf("self_size")
  const groups = new Map<string, { count: number; bytes: number }>()
  let total = 0
  for (let i = 0; i < heap.nodes.length; i += width) {
    const type = types[heap.nodes[i + typeAt]!] ?? "?"
    const bytes = heap.nodes[i + sizeAt]!
    total += bytes
    // Objects by constructor name; everything else (strings, code, arrays…) by its type.
    const name = type === "object" || type === "closure" ? `${type} ${heap.strings[heap.nodes[i + nameAt]!]}` : `(${type})`
    const group = groups.get(name) ?? { count: 0, bytes: 0 }
    group.count += 1
    group.bytes += bytes
    groups.set(name, group)
  }
  const rows = [...groups.entries()]
    .sort((a, b) => b[1].bytes - a[1].bytes)
    .slice(0, count)
    .map(([name, g]) => ({ name, count: g.count, selfMb: Math.round((g.bytes / 1048576) * 100) / 100 }))
  return { totalMb: Math.round((total / 1048576) * 10) / 10, rows }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
if (isMain) {
  const file = process.argv[2]
  if (file === undefined) {
    console.error("usage: tsx bench/heap-summary.ts <file.heapsnapshot> [top]")
    process.exit(2)
  }
  const summary = summarizeHeap(file, Number(process.argv[3] ?? "30"))
  console.log(`heap ${file}: ${summary.totalMb} MB in objects`)
  for (const row of summary.rows) console.log(`  ${row.selfMb.toFixed(2).padStart(8)} MB  ${String(row.count).padStart(8)}  ${row.name}`)
}
