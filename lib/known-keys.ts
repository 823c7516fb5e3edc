import { InvalidOptionError } from './errors.ts'

/** Edit distance (insertions, deletions, substitutions; case-insensitive), for "did you mean". */
function editDistance (a: string, b: string): number {
  const left = a.toLowerCase()
  const right = b.toLowerCase()
  let previous = Array.from({ length: right.length + 1 }, (_, index) => index)
  for (let i = 1; i <= left.length; i++) {
    const current = [i]
    for (let j = 1; j <= right.length; j++) {
      const substitution = (previous[j - 1] as number) + (left[i - 1] === right[j - 1] ? 0 : 1)
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution)
    }
    previous = current
  }
  return previous[right.length] as number
}

/** The known name closest to `name`, when it is close enough to be a likely misspelling. */
export function closestName (name: string, known: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const candidate of known) {
    const distance = editDistance(name, candidate)
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  // A third of the name's length, at least 2: catches typos without suggesting unrelated names.
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined
}

/** Makes the error for an unknown key; route options have their own error code. */
export type UnknownKeyError = (name: string, reason: string) => Error

function invalidOption (name: string, reason: string): Error {
  return new InvalidOptionError(name, reason)
}

/**
 * Refuses an options object that holds a key this package does not know: a misspelt option
 * would otherwise be ignored in silence and its default used instead.
 * @param path where the object sits, for the message (`''` for the top level, `heartbeat`, `adapter`)
 * @param fail makes the error thrown; default an `InvalidOptionError`
 * @throws {InvalidOptionError} naming the first unknown key and the closest known one
 */
export function rejectUnknownKeys (path: string, options: object, known: readonly string[], fail: UnknownKeyError = invalidOption): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue
    const name = path === '' ? key : `${path}.${key}`
    const closest = closestName(key, known)
    const hint = closest === undefined ? `known options: ${known.join(', ')}` : `did you mean "${closest}"?`
    throw fail(name, `unknown option; ${hint}`)
  }
}
