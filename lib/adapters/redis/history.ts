import type { ChainableCommander } from 'ioredis'
import type { HistoryEntry, HistoryRead, StreamPosition } from '../../recovery/store.ts'
import { decodeBody } from './record-codec.ts'
import type { AnyRedis } from './transport.ts'

// History in Redis Streams: one stream per audience (a room, everyone, one client), each entry
// with the ID `<offset>-0` and the recorded body in field `m`. A stream's epoch and last offset
// live in a hash beside it (a room's or everyone's meta hash, or a client's session), on the
// same slot as the stream and as the channel, so that one script appends and publishes at once.

/** The name of the record script as ioredis knows it (`defineCommand`); long, as it lands on a client that may be the application's. */
export const RECORD_COMMAND = 'fastifyWsHubRecord'

/** `mode` of the record script: the stream of a room or of everyone, whose meta hash the script creates when it is missing. */
export const MODE_META = 'm'
/** `mode` of the record script: a client's stream, recorded only while the client's session exists. */
export const MODE_SESSION = 's'

/**
 * Records a body in a stream and publishes it, in one step: no other publish of the stream can
 * come between the offset it takes and its message on the channel, so that every node gets a
 * stream's messages in offset order, and a message is on the channel only if it is in the history.
 * KEYS[1] the stream, KEYS[2] its meta hash (or the client's session).
 * ARGV: body, channel, maxMessages, ttl (ms), mode, epoch for a new meta hash, PUBLISH or SPUBLISH.
 * - A missing meta hash is a new life of the stream: its epoch is ARGV[6] (unique per call, made
 *   by the publisher), and whatever is left of the stream (it outlived its meta hash: an eviction)
 *   is deleted, as its IDs would be above the new offsets.
 * - A missing session: the message is published without being recorded (length 0, no position).
 * - A client's stream lives as long as its session (which `touchSessions` and `endSession` renew);
 *   a room's stream and meta live `ttl` past the last message (and `touchSessions` keeps the meta).
 * Returns what the publish returns: the subscribers reached.
 */
const RECORD_SCRIPT = `
local e = redis.call('HGET', KEYS[2], 'e')
local position = ''
if (not e) and ARGV[5] == '${MODE_META}' then
  e = ARGV[6]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', e, 'o', 0)
end
if e then
  local o = redis.call('HINCRBY', KEYS[2], 'o', 1)
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], o .. '-0', 'm', ARGV[1])
  if ARGV[5] == '${MODE_META}' then
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
  else
    local ttl = redis.call('PTTL', KEYS[2])
    if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
  end
  position = e .. ':' .. o
end
return redis.call(ARGV[7], ARGV[2], 'wr' .. string.char(#position) .. position .. ARGV[1])
`

/** One call of the record script, all but the body (stamped with its sequence number when it leaves). */
export interface RecordCall {
  /** The stream, then its meta hash or the client's session. */
  readonly keys: readonly [string, string]
  /** The channel, as Redis knows it (keyPrefix included). */
  readonly channel: string
  readonly maxMessages: number
  /** Ms a room's stream and meta hash outlive its last message. */
  readonly ttl: number
  readonly mode: typeof MODE_META | typeof MODE_SESSION
  /** The epoch should this call begin a new life of the stream. */
  readonly epoch: string
  /** PUBLISH on a standalone Redis, SPUBLISH on a cluster (the channel is on the keys' slot). */
  readonly publish: 'PUBLISH' | 'SPUBLISH'
}

type ScriptArgument = string | Buffer | number

/** A client or pipeline with the record script defined on it (ioredis adds the method at run time). */
interface WithRecord<R> {
  fastifyWsHubRecord (...args: ScriptArgument[]): R
}

/** Defines the record script on a client (idempotent): its pipelines get it too, and EVALSHA with EVAL as fallback. */
export function defineHistoryScripts (redis: AnyRedis): void {
  redis.defineCommand(RECORD_COMMAND, { numberOfKeys: 2, lua: RECORD_SCRIPT })
}

function recordArguments (call: RecordCall, body: Buffer): ScriptArgument[] {
  return [call.keys[0], call.keys[1], body, call.channel, call.maxMessages, call.ttl, call.mode, call.epoch, call.publish]
}

/** Runs the record script on a client. */
export function record (redis: AnyRedis, call: RecordCall, body: Buffer): Promise<unknown> {
  return (redis as unknown as WithRecord<Promise<unknown>>).fastifyWsHubRecord(...recordArguments(call, body))
}

/** Queues the record script on a pipeline. */
export function recordInPipeline (pipeline: ChainableCommander, call: RecordCall, body: Buffer): void {
  (pipeline as unknown as WithRecord<ChainableCommander>).fastifyWsHubRecord(...recordArguments(call, body))
}

/** The epoch and last offset in a meta hash or session (fields `e`, `o`); null when there is none. */
function positionOf (fields: ReadonlyArray<string | null>): StreamPosition | null {
  const [epoch, offset] = fields
  if (epoch === null || epoch === undefined) return null
  return { epoch, offset: Number(offset ?? 0) }
}

/** The stream's last position now (`e`, `o` of its meta hash or session), null without one. */
export async function topOf (redis: AnyRedis, metaKey: string): Promise<StreamPosition | null> {
  return positionOf(await redis.hmget(metaKey, 'e', 'o'))
}

/** One entry as XRANGE gives it with Buffers: its ID and its field-value pairs. */
type RawEntry = [Buffer, Buffer[]]

/**
 * Decodes a stream entry; undefined when it is not one of ours.
 * @param room the room of the stream, if a room's: its copy of a broadcast to several rooms gets it as `via`, as it was delivered
 */
function entryOf ([id, fields]: RawEntry, room: string | undefined): HistoryEntry | undefined {
  const offset = Number.parseInt(id.toString('latin1'), 10)
  const index = fields.findIndex((field, at) => at % 2 === 0 && field.toString('latin1') === 'm')
  const body = index < 0 ? undefined : fields[index + 1]
  const decoded = body === undefined ? undefined : decodeBody(body)
  if (decoded === undefined || !Number.isSafeInteger(offset)) return undefined
  const envelope = decoded.envelope
  const several = room !== undefined && envelope.kind === 'broadcast' && envelope.rooms !== undefined && envelope.rooms.length > 1
  return {
    offset,
    envelope: several ? { ...envelope, via: room } : envelope,
    origin: { node: decoded.nodeId, ordinal: decoded.ordinal, publishedAt: decoded.publishedAt }
  }
}

/** Where a stream is read from. */
export interface HistorySource {
  readonly streamKey: string
  /** The stream's meta hash, or the client's session. */
  readonly metaKey: string
  /** The room, for a room's stream. */
  readonly room: string | undefined
}

/**
 * Reads a stream's messages after a position, per `RecoveryStore.read`. The meta hash and the
 * stream are read in one MULTI (they share a slot), so that the entries match the top read.
 */
export async function readHistory (redis: AnyRedis, { streamKey, metaKey, room }: HistorySource, after: StreamPosition | null, maxMessages: number): Promise<HistoryRead> {
  const from = after?.offset ?? 0
  const results = await redis.multi()
    .hmget(metaKey, 'e', 'o')
    .xrangeBuffer(streamKey, String(from + 1), '+', 'COUNT', maxMessages)
    .exec()
  if (results === null) throw new Error('the history read was aborted')
  const [[metaError, meta], [rangeError, range]] = results as [[Error | null, Array<string | null>], [Error | null, RawEntry[]]]
  if (metaError !== null) throw metaError
  if (rangeError !== null) throw rangeError
  const top = positionOf(meta)
  if (top === null) return after === null ? { ok: true, entries: [], top: null } : { ok: false, reason: 'epoch' }
  // An offset beyond the stream's last is not one this life of the stream gave.
  if (after !== null && (after.epoch !== top.epoch || after.offset > top.offset)) return { ok: false, reason: 'epoch' }
  if (top.offset === from) return { ok: true, entries: [], top }
  if (top.offset - from > maxMessages) return { ok: false, reason: 'limit' }
  const entries: HistoryEntry[] = []
  for (const raw of range) {
    const entry = entryOf(raw, room)
    // An entry we cannot read is a message we cannot give: as good as trimmed.
    if (entry === undefined) return { ok: false, reason: 'trimmed' }
    if (entry.offset > top.offset) break
    entries.push(entry)
  }
  // Offsets have no holes: the entries are complete when they run from the next offset to the top.
  if (entries[0]?.offset !== from + 1 || entries.length !== top.offset - from) return { ok: false, reason: 'trimmed' }
  return { ok: true, entries, top }
}
