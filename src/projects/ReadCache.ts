/**
 * The last body served for each read (a project's page, a page of the list), with its entity
 * tag, bounded by total bytes and evicted least recently used first.
 *
 * It is never trusted on its own: a read sends the cached tag to PostgreSQL along with the
 * client's `If-None-Match`, and the cached body is served only when PostgreSQL computes the
 * same tag from the rows as they are now. Any write, by this instance or another, changes the
 * tag, so a stale body cannot be served; a hit saves building, sending and decoding the body
 * (the statement computes the tag alone).
 */
export interface CachedBody {
  readonly etag: string
  readonly body: Buffer
}

export class ReadCache {
  private readonly entries = new Map<string, CachedBody>()
  private bytes = 0

  constructor(readonly maxBytes: number) {}

  get(key: string): CachedBody | undefined {
    const entry = this.entries.get(key)
    if (entry !== undefined) {
      // Map order is insertion order: re-inserting makes it the most recently used.
      this.entries.delete(key)
      this.entries.set(key, entry)
    }
    return entry
  }

  /** Keeps `entry` unless it alone is more than a quarter of the budget (one body must not flush the rest). */
  set(key: string, entry: CachedBody): void {
    this.delete(key)
    if (entry.body.length > this.maxBytes / 4) return
    this.entries.set(key, entry)
    this.bytes += entry.body.length
    for (const [oldest, old] of this.entries) {
      if (this.bytes <= this.maxBytes) break
      this.entries.delete(oldest)
      this.bytes -= old.body.length
    }
  }

  delete(key: string): void {
    const entry = this.entries.get(key)
    if (entry === undefined) return
    this.entries.delete(key)
    this.bytes -= entry.body.length
  }

  get size(): number {
    return this.bytes
  }
}
