/*
 * How a payload of any length travels in PostgreSQL notifications, whose payloads must stay under
 * 8,000 bytes and cannot hold a NUL character. Each notification is one part of one message:
 *
 *   1:<sender>:<seq>:<index>:<count>:<encoding>:<data>
 *
 * `sender` is the publishing instance, `seq` its message number, `encoding` `t` (the text itself)
 * or `b` (base64 of its UTF-8 bytes, only for text with a NUL). Text is cut at UTF-8 character
 * boundaries, so every part is valid text on its own.
 */

/** Bytes of data per notification: the header (at most ~70 bytes) stays within PostgreSQL's 8,000. */
export const PART_DATA_BYTES = 7_900

const HEADER = /^1:([0-9a-z]{1,32}):(\d{1,15}):(\d{1,9}):(\d{1,9}):([tb]):/

const isContinuationByte = (byte: number | undefined) => byte !== undefined && (byte & 0xc0) === 0x80

/** Pieces of at most `limit` UTF-8 bytes each, never cut inside a character; at least one piece. */
export const splitUtf8 = (text: string, limit: number): ReadonlyArray<string> => {
  // The common case (a short payload) costs a count, not a copy.
  if (text.length <= limit / 3 || Buffer.byteLength(text, "utf8") <= limit) return [text]
  const bytes = Buffer.from(text, "utf8")
  const pieces: Array<string> = []
  let start = 0
  while (start < bytes.length) {
    let end = Math.min(start + limit, bytes.length)
    while (end < bytes.length && isContinuationByte(bytes[end])) end--
    pieces.push(bytes.toString("utf8", start, end))
    start = end
  }
  return pieces
}

const splitAscii = (text: string, limit: number): ReadonlyArray<string> => {
  const pieces: Array<string> = []
  for (let start = 0; start < text.length || pieces.length === 0; start += limit) pieces.push(text.slice(start, start + limit))
  return pieces
}

/** The notification payloads that carry `payload` as message `seq` of `sender`, in order. */
export const toParts = (sender: string, seq: number, payload: string): ReadonlyArray<string> => {
  const encoding = payload.includes("\u0000") ? "b" : "t"
  const pieces = encoding === "t"
    ? splitUtf8(payload, PART_DATA_BYTES)
    : splitAscii(Buffer.from(payload, "utf8").toString("base64"), PART_DATA_BYTES)
  return pieces.map((piece, index) => `1:${sender}:${seq}:${index}:${pieces.length}:${encoding}:${piece}`)
}

interface Pending {
  readonly seq: string
  readonly count: number
  readonly encoding: string
  readonly pieces: Array<string>
}

/**
 * Puts messages back together from their parts, per channel and sender. The parts of one message
 * arrive consecutively (they are sent in one statement, so in one transaction); a message whose
 * parts do not line up (a connection lost halfway) is dropped and counted.
 */
export class Reassembly {
  private readonly pending = new Map<string, Pending>()
  /** Notifications that were not a part of ours, or parts of a message that could not be completed. */
  dropped = 0

  /** The whole payload when `notification` completes a message; otherwise undefined. */
  accept(channel: string, notification: string): string | undefined {
    const header = HEADER.exec(notification)
    if (header === null) {
      this.dropped++
      return undefined
    }
    const [prefix = "", sender = "", seq = "", indexText = "", countText = "", encoding = ""] = header
    const index = Number(indexText)
    const count = Number(countText)
    const piece = notification.slice(prefix.length)
    const key = `${channel}\u0000${sender}`
    if (index === 0) {
      if (this.pending.delete(key)) this.dropped++
      if (count === 1) return decode(encoding, piece)
      this.pending.set(key, { seq, count, encoding, pieces: [piece] })
      return undefined
    }
    const message = this.pending.get(key)
    if (message === undefined || message.seq !== seq || message.pieces.length !== index || message.count !== count) {
      // A part that does not continue what is pending: that message (or this one's beginning) is lost.
      this.pending.delete(key)
      this.dropped++
      return undefined
    }
    message.pieces.push(piece)
    if (message.pieces.length < count) return undefined
    this.pending.delete(key)
    return decode(encoding, message.pieces.join(""))
  }

  /** Forgets half-received messages (after a reconnect their other parts are gone). */
  reset(): void {
    this.dropped += this.pending.size
    this.pending.clear()
  }
}

const decode = (encoding: string, data: string) => (encoding === "t" ? data : Buffer.from(data, "base64").toString("utf8"))
