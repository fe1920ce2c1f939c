import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import { UnauthorizedBody } from "./ErrorBodies.js"

/**
 * REST: `Authorization: Bearer <token>` on every /api endpoint; the OpenAPI document shows
 * the scheme. Only the declaration lives here: the API definition (and so the typed client,
 * which runs in browsers) needs it; the check itself is `AuthorizationLive` in Auth.ts.
 */
export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("Authorization", {
  failure: UnauthorizedBody,
  security: { bearer: HttpApiSecurity.bearer }
}) {}
