/**
 * Measured numbers a test prints for whoever reads the run (catch-up positions, write
 * counts, frames sent): one line on stderr, `[label] {json}`, so that no test logs through
 * `console` and every such line has the same shape.
 */
export const report = (label: string, data: Readonly<Record<string, unknown>>): void => {
  process.stderr.write(`[${label}] ${JSON.stringify(data)}\n`)
}
