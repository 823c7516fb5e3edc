import type { ClientParams } from '../client.ts'
import type { FastifySchema } from 'fastify'
import type { HubRouteOptions, NoParams } from '../route.ts'
import type { NoSchemas, ReplySchemas, SchemaMap } from './types.ts'

/**
 * Declares a route's options once, fully typed, without registering it: export the result,
 * register it with `app.hub.route(chatRoute)`, and type a client from it with `typeof chatRoute`
 * (`MessagesOf`, `EventsOf`, `RepliesOf`). It returns its argument unchanged; it exists for the
 * inference (handler data, replies, `client.sendEvent`), which a plain object literal would lose.
 */
export function defineRoute<
  TParams extends ClientParams = NoParams,
  const S extends FastifySchema = FastifySchema,
  M extends SchemaMap = NoSchemas,
  E extends SchemaMap = NoSchemas,
  R extends ReplySchemas<M> = NoSchemas
> (options: HubRouteOptions<TParams, S, M, E, R>): HubRouteOptions<TParams, S, M, E, R> {
  return options
}
