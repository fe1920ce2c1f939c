/** Where a continued answer joins the text before it (the request itself: `claude/Continuation.ts`). */

/** A continuation that repeats the end of the partial answer repeats at least this much before it is trimmed. */
export const MIN_OVERLAP = 20

/** How much of a continuation is collected before deciding how much of it repeats the partial answer. */
export const SEAM_WINDOW = 400

/**
 * How many leading characters of `next` repeat the end of `previous`: the longest such
 * overlap of at least MIN_OVERLAP characters, or 0 (a short coincidence is not a repeat).
 */
export const overlapLength = (previous: string, next: string): number => {
  for (let length = Math.min(previous.length, next.length); length >= MIN_OVERLAP; length--) {
    if (previous.endsWith(next.slice(0, length))) return length
  }
  return 0
}

/**
 * A continuation's first text, held until it is long enough (SEAM_WINDOW) to trim what
 * repeats the end of the answer so far; then, and whenever the attempt ends, it joins.
 */
export class Seam {
  private held: string | undefined
  constructor(private readonly deliver: (text: string) => void, private readonly textSoFar: () => string, continuing: boolean) {
    this.held = continuing ? "" : undefined
  }
  add(text: string): void {
    if (this.held === undefined) return this.deliver(text)
    this.held += text
    if (this.held.length >= SEAM_WINDOW) this.join()
  }
  join(): void {
    if (this.held === undefined) return
    const held = this.held
    this.held = undefined
    this.deliver(held.slice(overlapLength(this.textSoFar(), held)))
  }
}
