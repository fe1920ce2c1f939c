import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Encoding from "effect/Encoding"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { ValidationError } from "../domain/Errors.js"

/** The largest page a client may ask for, of projects or of messages. */
export const MAX_PAGE_SIZE = 500
/** The page size when a cursor comes without a limit. */
export const DEFAULT_PAGE_SIZE = 50

const pageLimitMessage = `must be an integer from 1 to ${MAX_PAGE_SIZE}`

/** `limit` / `messagesLimit`: decimal digits only (no `1e2`, no sign), 1 to MAX_PAGE_SIZE. */
export const PageLimit = Schema.String.pipe(
  Schema.pattern(/^[0-9]{1,9}$/, { message: () => pageLimitMessage, description: `Page size, 1 to ${MAX_PAGE_SIZE}` }),
  Schema.compose(Schema.NumberFromString),
  Schema.between(1, MAX_PAGE_SIZE, { message: () => pageLimitMessage })
)

/**
 * An opaque cursor: base64url of a small JSON keyset. Anything this service did not issue
 * (bad base64, bad JSON, a wrong field) is one VALIDATION_ERROR, never a database error.
 */
const opaqueCursor = <A, I>(keyset: Schema.Schema<A, I>, description: string) =>
  Schema.transformOrFail(Schema.String, Schema.typeSchema(keyset), {
    strict: true,
    decode: (text, _, ast) => {
      const invalid = ParseResult.fail(new ParseResult.Type(ast, text, "is not a cursor this service issued"))
      if (!/^[A-Za-z0-9_-]{1,400}$/.test(text)) return invalid
      let json: unknown
      try {
        // Effect's Encoding rather than Buffer: the typed client runs this schema in browsers too.
        json = JSON.parse(Either.getOrThrow(Encoding.decodeBase64UrlString(text)))
      } catch {
        return invalid
      }
      return Either.match(Schema.decodeUnknownEither(keyset)(json), { onLeft: () => invalid, onRight: ParseResult.succeed })
    },
    encode: (value) =>
      ParseResult.succeed(Encoding.encodeBase64Url(JSON.stringify(Schema.encodeSync(keyset)(value))))
  }).annotations({ description })

/** PostgreSQL's microsecond timestamp in UTC, as the list query writes it; a real instant. */
const MicrosecondInstant = Schema.String.pipe(
  Schema.pattern(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/),
  Schema.filter((text) => {
    const date = new Date(text)
    return !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 23) === text.slice(0, 23)
  })
)

/** Where the next page of projects starts: after (updatedAt, id) in `updated_at DESC, id` order. */
export const ProjectsCursor = opaqueCursor(
  Schema.Struct({ u: MicrosecondInstant, i: Schema.UUID }),
  "Opaque cursor from `nextCursor` of the previous page"
)
/**
 * The cursor parameters as the API declares them: plain strings (the same OpenAPI), so
 * that a client passes the opaque text it was given; the handler decodes the keyset.
 */
export const ProjectsCursorParam = Schema.String.annotations({ description: "Opaque cursor from `nextCursor` of the previous page" })
export type ProjectsCursor = typeof ProjectsCursor.Type

/** Where the next (older) page of messages ends: before this message ordinal. */
export const MessagesCursor = opaqueCursor(
  Schema.Struct({ o: Schema.Int.pipe(Schema.between(1, Number.MAX_SAFE_INTEGER)) }),
  "Opaque cursor from `nextBefore` of the previous page"
)
export const MessagesCursorParam = Schema.String.annotations({ description: "Opaque cursor from `nextBefore` of the previous page" })
export type MessagesCursor = typeof MessagesCursor.Type

export const encodeProjectsCursor = Schema.encodeSync(ProjectsCursor)

/** A cursor parameter decoded, or VALIDATION_ERROR naming the parameter, as a schema failure of the request would. */
export const decodeCursor = <A>(cursor: Schema.Schema<A, string>, parameter: string) => {
  const decode = Schema.decodeUnknown(cursor)
  return (text: string | undefined): Effect.Effect<A | undefined, ValidationError> =>
    text === undefined
      ? Effect.succeed(undefined)
      : decode(text).pipe(Effect.mapError(() => new ValidationError({ message: `${parameter}: is not a cursor this service issued` })))
}
export const encodeMessagesCursor = Schema.encodeSync(MessagesCursor)

/** A page request: `limit` null is everything (the PRD's unpaginated read). */
export interface PageRequest<Cursor> {
  readonly limit: number | null
  readonly cursor: Cursor | null
}

export const pageRequest = <Cursor>(limit: number | undefined, cursor: Cursor | undefined): PageRequest<Cursor> => ({
  limit: limit ?? (cursor === undefined ? null : DEFAULT_PAGE_SIZE),
  cursor: cursor ?? null
})

/**
 * The entity tags a client holds (`If-None-Match`), as the opaque values the database
 * computes: `*` matches any, `W/` prefixes are dropped (a GET compares weakly), anything
 * that cannot be one of ours is ignored.
 */
export interface Validators {
  readonly any: boolean
  readonly tags: ReadonlyArray<string>
}

const OUR_TAG = /^[0-9a-f]{32}$/

export const parseIfNoneMatch = (header: string | undefined): Validators => {
  if (header === undefined) return { any: false, tags: [] }
  const parts = header.split(",").map((part) => part.trim())
  const tags = parts
    .map((part) => part.replace(/^W\//, "").replace(/^"(.*)"$/, "$1"))
    .filter((tag) => OUR_TAG.test(tag))
  return { any: parts.includes("*"), tags }
}

/** A read as PostgreSQL answered it: the entity tag, and the JSON body unless the client's tag matched. */
export interface JsonRead {
  readonly etag: string
  /** UTF-8 JSON; null: the client's copy is current (304). */
  readonly body: Uint8Array | null
}
