import type { FastifyRequest } from 'fastify'
import type { AllowedOrigins } from './options.ts'

/** Decides whether an upgrade request's `Origin` may open a socket. */
export type OriginCheck = (origin: string, request: FastifyRequest) => boolean

function hostOf (origin: string): string | undefined {
  try {
    const url = new URL(origin)
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.host : undefined
  } catch {
    return undefined
  }
}

/**
 * The default policy against cross-site WebSocket hijacking: a browser's origin must be the very
 * host the request was sent to (host and port; `Host`, or `X-Forwarded-Host` under `trustProxy`).
 * `URL` turns international names into punycode, so a look-alike (homoglyph) host never matches.
 */
export function sameHostOrigin (origin: string, request: FastifyRequest): boolean {
  const host = hostOf(origin)
  return host !== undefined && host === request.host.toLowerCase()
}

/** Builds the origin check for an `allowedOrigins` option (undefined: same host only). */
export function createOriginCheck (allowed: AllowedOrigins | undefined): OriginCheck | undefined {
  if (allowed === undefined) return sameHostOrigin
  if (allowed === '*') return undefined
  if (typeof allowed === 'function') return allowed
  const entries = Array.isArray(allowed) ? allowed : [allowed as string | RegExp]
  return (origin) => entries.some(entry => {
    if (typeof entry === 'string') return entry === origin
    // A /g or /y RegExp keeps lastIndex between calls: every other check of one origin would fail.
    entry.lastIndex = 0
    return entry.test(origin)
  })
}
