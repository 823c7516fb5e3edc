import type { SessionRecord, StreamPosition } from '../../recovery/store.ts'
import { isCluster, type AnyRedis } from './transport.ts'

// Session records in Redis: the hash `session:{<id>}`, on the slot of the client's channel and
// stream, with the fields
//   t token, p params digest, a position of `*` at the start, r:<room> the position of each room
//   at the join (a position is "<epoch>:<offset>", or "" for none), e and o the epoch and last
//   offset of the client's own stream (see the record script in history.ts).
// Every write of a live session keeps its TTL (PEXPIRE); none creates a hash that has lapsed.

const TOKEN = 't'
const PARAMS = 'p'
const ALL = 'a'
const ROOM = 'r:'
const EPOCH = 'e'
const OFFSET = 'o'

/** Script names as ioredis knows them (`defineCommand`). */
const CLAIM_COMMAND = 'fastifyWsHubClaimSession'
const JOIN_COMMAND = 'fastifyWsHubJoinSession'
const END_COMMAND = 'fastifyWsHubEndSession'

/**
 * Replaces the token if it is still ARGV[1] and renews the TTL (ARGV[3] ms); returns the fields
 * as they were, or nil. One script, so that of two resumes with one token only one wins.
 */
const CLAIM_SCRIPT = `
if redis.call('HGET', KEYS[1], '${TOKEN}') ~= ARGV[1] then return false end
local fields = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], '${TOKEN}', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return fields
`

/** Sets a field of a session that still exists: an HSET alone would bring a lapsed one back without a TTL, for ever. */
const JOIN_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
`

/** The session (KEYS[1]) and its client's stream (KEYS[2]) live ARGV[2] ms more, if the token is still ARGV[1]. */
const END_SCRIPT = `
if redis.call('HGET', KEYS[1], '${TOKEN}') ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
`

type ScriptArgument = string | number

/** A client with the session scripts defined on it (ioredis adds the methods at run time). */
interface WithSessionScripts {
  fastifyWsHubClaimSession (session: string, token: string, newToken: string, ttl: number): Promise<string[] | null>
  fastifyWsHubJoinSession (session: string, field: string, value: string): Promise<number>
  fastifyWsHubEndSession (session: string, stream: string, token: string, ttl: number): Promise<number>
}

function scripts (redis: AnyRedis): WithSessionScripts {
  return redis as unknown as WithSessionScripts
}

/** Defines the session scripts on a client (idempotent). */
export function defineSessionScripts (redis: AnyRedis): void {
  redis.defineCommand(CLAIM_COMMAND, { numberOfKeys: 1, lua: CLAIM_SCRIPT })
  redis.defineCommand(JOIN_COMMAND, { numberOfKeys: 1, lua: JOIN_SCRIPT })
  redis.defineCommand(END_COMMAND, { numberOfKeys: 2, lua: END_SCRIPT })
}

/** A position as a hash field holds it. */
function positionText (position: StreamPosition | null): string {
  return position === null ? '' : `${position.epoch}:${position.offset}`
}

/** A position from a hash field; null for "" or anything unreadable. */
function positionFrom (text: string | undefined): StreamPosition | null {
  if (text === undefined || text === '') return null
  const colon = text.lastIndexOf(':')
  const offset = Number(text.slice(colon + 1))
  if (colon < 1 || !Number.isSafeInteger(offset) || offset < 0) return null
  return { epoch: text.slice(0, colon), offset }
}

/** A record from its hash fields; undefined when they are not a session (none, or no token). */
function recordFrom (fields: Readonly<Record<string, string>>): SessionRecord | undefined {
  const token = fields[TOKEN]
  if (token === undefined) return undefined
  const rooms: Record<string, StreamPosition | null> = {}
  for (const [field, value] of Object.entries(fields)) {
    if (field.startsWith(ROOM)) rooms[field.slice(ROOM.length)] = positionFrom(value)
  }
  return { token, params: fields[PARAMS] ?? '', all: positionFrom(fields[ALL]), rooms }
}

/** Field-value pairs, as HGETALL gives them in a script's reply, as an object. */
function pairs (flat: readonly string[]): Record<string, string> {
  const fields: Record<string, string> = {}
  for (let index = 0; index + 1 < flat.length; index += 2) fields[flat[index] as string] = flat[index + 1] as string
  return fields
}

/** The first error of a MULTI's or a pipeline's results; an error too when it was aborted (null). */
function failureOf (results: Array<[Error | null, unknown]> | null): Error | undefined {
  if (results === null) return new Error('the transaction was aborted')
  return results.find(([error]) => error !== null)?.[0] ?? undefined
}

/**
 * Writes a new session: the hash replaced whole, its client's stream emptied (a new life of it,
 * under a new epoch, so that no offset of an earlier session's stream is taken for one of this),
 * and a TTL. One MULTI: the hash and the stream share a slot.
 * @param epoch the client stream's epoch, unique per call
 */
export async function createSession (redis: AnyRedis, sessionKey: string, streamKey: string, record: SessionRecord, epoch: string, ttl: number): Promise<void> {
  const fields: ScriptArgument[] = [TOKEN, record.token, PARAMS, record.params, ALL, positionText(record.all), EPOCH, epoch, OFFSET, 0]
  for (const [room, position] of Object.entries(record.rooms)) fields.push(ROOM + room, positionText(position))
  const results = await redis.multi().del(streamKey, sessionKey).hset(sessionKey, ...fields).pexpire(sessionKey, ttl).exec()
  const failure = failureOf(results)
  if (failure !== undefined) throw failure
}

/** Reads a session; undefined when there is none. */
export async function readSession (redis: AnyRedis, sessionKey: string): Promise<SessionRecord | undefined> {
  return recordFrom(await redis.hgetall(sessionKey))
}

/** Swaps the token if it matches, renewing the TTL; the record as it was, or undefined. */
export async function claimSession (redis: AnyRedis, sessionKey: string, token: string, newToken: string, ttl: number): Promise<SessionRecord | undefined> {
  const flat = await scripts(redis).fastifyWsHubClaimSession(sessionKey, token, newToken, ttl)
  return flat === null ? undefined : recordFrom(pairs(flat))
}

/** Records a room (and its position at the join) in a session that exists. */
export function joinSession (redis: AnyRedis, sessionKey: string, room: string, position: StreamPosition | null): Promise<unknown> {
  return scripts(redis).fastifyWsHubJoinSession(sessionKey, ROOM + room, positionText(position))
}

/** Removes a room from a session. */
export function leaveSession (redis: AnyRedis, sessionKey: string, room: string): Promise<unknown> {
  return redis.hdel(sessionKey, ROOM + room)
}

/** Gives a session (and its client's stream) `ttl` ms more if its token is still `token`. */
export function endSession (redis: AnyRedis, sessionKey: string, streamKey: string, token: string, ttl: number): Promise<unknown> {
  return scripts(redis).fastifyWsHubEndSession(sessionKey, streamKey, token, ttl)
}

/**
 * Renews the TTL of keys: one pipeline on a standalone Redis; on a cluster one command each,
 * which ioredis sends to the shard of each key (and batches per shard).
 */
export async function renew (redis: AnyRedis, keys: readonly string[], ttl: number): Promise<void> {
  if (isCluster(redis)) {
    await Promise.all(keys.map(key => redis.pexpire(key, ttl)))
    return
  }
  const pipeline = redis.pipeline()
  for (const key of keys) pipeline.pexpire(key, ttl)
  const failure = failureOf(await pipeline.exec())
  if (failure !== undefined) throw failure
}
