import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { ClientFrame, ClientFrameType } from "../domain/ChatProtocol.js"
import { InvalidMessage, MessageTooLarge, ValidationError } from "../domain/Errors.js"
import { boundedMessage, MAX_JSON_DEPTH, nestsDeeperThan, topLevelType } from "./JsonNesting.js"

const decodeClientFrame = Schema.decodeUnknownEither(ClientFrame, { errors: "first", onExcessProperty: "ignore" })
const isKnownType = Schema.is(ClientFrameType)

export type FrameError = InvalidMessage | MessageTooLarge | ValidationError

/**
 * Parses a text frame into a client message, with the protocol's error for anything else.
 * Never throws: deep nesting is refused before `JSON.parse` and the schema see it, and
 * error messages are cut short so that a reply never echoes a large frame.
 */
export const parseFrame = (data: string | Uint8Array, maxFrameBytes: number): Either.Either<ClientFrame, FrameError> => {
  if (typeof data !== "string") return Either.left(new InvalidMessage({ message: "binary frames are not supported; send JSON text" }))
  if (Buffer.byteLength(data, "utf8") > maxFrameBytes) return Either.left(new MessageTooLarge({ limit: maxFrameBytes, unit: "bytes" }))
  if (nestsDeeperThan(data)) {
    // Never parsed: the protocol's order of checks (unknown type first) read from the text.
    return isKnownType(topLevelType(data))
      ? Either.left(new ValidationError({ message: `JSON nested deeper than ${MAX_JSON_DEPTH} levels` }))
      : Either.left(new InvalidMessage({ message: `unknown message type; expected one of ${ClientFrameType.literals.join(", ")}` }))
  }
  let json: unknown
  try {
    json = JSON.parse(data)
  } catch {
    return Either.left(new InvalidMessage({ message: "frame is not valid JSON" }))
  }
  const type = typeof json === "object" && json !== null && "type" in json ? json.type : undefined
  if (!isKnownType(type)) {
    return Either.left(new InvalidMessage({ message: `unknown message type; expected one of ${ClientFrameType.literals.join(", ")}` }))
  }
  return Either.mapLeft(decodeClientFrame(json), (error) => new ValidationError({ message: boundedMessage(error.message) }))
}
