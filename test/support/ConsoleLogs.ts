/**
 * Vitest setup file (every test file's process): the services a test starts in process log
 * JSON lines straight to `process.stdout`, which Vitest cannot tie to a test. Sent through
 * `console` instead, each line belongs to the test that was running, and `silent:
 * "passed-only"` (vitest.config.ts) prints it only when that test fails.
 */
const write = process.stdout.write.bind(process.stdout)

const toConsole = (chunk: string | Uint8Array, encodingOrCallback?: unknown, callback?: unknown): boolean => {
  const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8")
  const trimmed = text.endsWith("\n") ? text.slice(0, -1) : text
  if (trimmed !== "") console.log(trimmed)
  const done = typeof encodingOrCallback === "function" ? encodingOrCallback : callback
  if (typeof done === "function") queueMicrotask(() => (done as () => void)())
  return true
}

// Only lines that look like the service's JSON logs; anything else (Vitest's own output,
// if any is written from this process) keeps going to stdout as before.
process.stdout.write = ((chunk: string | Uint8Array, encodingOrCallback?: unknown, callback?: unknown): boolean => {
  const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8")
  return text.startsWith("{\"timestamp\"")
    ? toConsole(chunk, encodingOrCallback, callback)
    : write(chunk as string, encodingOrCallback as BufferEncoding, callback as () => void)
}) as typeof process.stdout.write
