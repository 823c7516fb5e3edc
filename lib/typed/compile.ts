import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import fastJson from 'fast-json-stringify'
import { InvalidEventError, InvalidRouteError } from '../errors.ts'

/** Turns a payload into its JSON text. */
export type Serialiser = (data: unknown) => string

/**
 * Compiles a TypeBox schema's checker, once per route and message type.
 * @param option where the schema sits in the route options (`messages.say`), for the error
 * @throws {InvalidRouteError} when the schema is not TypeBox
 */
export function compileCheck (option: string, schema: unknown): TypeCheck<TSchema> {
  if (typeof schema !== 'object' || schema === null) throw new InvalidRouteError(option, 'expected a TypeBox schema')
  try {
    return TypeCompiler.Compile(schema as TSchema)
  } catch (error) {
    throw new InvalidRouteError(option, 'expected a TypeBox schema (Type.Object(...) from fastify-ws-hub or @sinclair/typebox) ' +
      `throughout; a plain JSON Schema is not supported (${(error as Error).message})`)
  }
}

/** The first reason a value fails its schema, naming the field: `data/text: Expected string length greater or equal to 1`. */
export function firstFailure (check: TypeCheck<TSchema>, value: unknown): string {
  const first = check.Errors(value).First()
  /* c8 ignore next -- TypeBox names an error for every value its Check refuses */
  if (first === undefined) return 'data: does not match its schema'
  return `data${first.path}: ${first.message}`
}

/**
 * Compiles the serialiser of an outgoing payload (an event or a declared reply) with
 * fast-json-stringify, once per type. It writes only what the schema declares; with `validate`
 * the payload is first checked against the schema, so that a wrong one throws instead of being
 * coerced.
 * @param name the event or reply type, for errors at send time
 * @param option where the schema sits in the route options (`events.said`), for errors now
 * @throws {InvalidRouteError} when the schema is not TypeBox or fast-json-stringify cannot compile it
 */
export function compileSerialiser (name: string, option: string, schema: unknown, validate: boolean): Serialiser {
  const check = compileCheck(option, schema)
  let serialise: Serialiser
  try {
    serialise = fastJson(schema as fastJson.Schema) as Serialiser
  } catch (error) {
    throw new InvalidRouteError(option, `fast-json-stringify cannot compile this schema: ${(error as Error).message}`)
  }
  return function serialiseChecked (data: unknown): string {
    if (validate && !check.Check(data)) throw new InvalidEventError(name, firstFailure(check, data))
    try {
      return serialise(data)
    } catch (error) {
      // fast-json-stringify throws for a missing required property, whatever validate says
      throw new InvalidEventError(name, (error as Error).message)
    }
  }
}
