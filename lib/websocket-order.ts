import type { FastifyInstance } from 'fastify'
import { WebsocketAfterHubError } from './errors.ts'

const kPluginMeta = Symbol.for('plugin-meta')

type Register = (this: FastifyInstance, plugin: unknown, options?: unknown) => unknown

/** The fastify-plugin name of a plugin function (or of an ES module's default export). */
function pluginName (plugin: unknown): string | undefined {
  const candidate = (typeof plugin === 'object' && plugin !== null && 'default' in plugin)
    ? (plugin as { default: unknown }).default
    : plugin
  if (typeof candidate !== 'function') return undefined
  const meta = (candidate as unknown as Record<symbol, { name?: unknown } | undefined>)[kPluginMeta]
  return typeof meta?.name === 'string' ? meta.name : undefined
}

async function websocketAfterHub (): Promise<void> {
  throw new WebsocketAfterHubError()
}

/** The plugin itself, or one that fails with a clear error when it is @fastify/websocket. */
function refused (plugin: unknown): unknown {
  return pluginName(plugin) === '@fastify/websocket' ? websocketAfterHub : plugin
}

/**
 * Once the hub has registered @fastify/websocket itself, a second registration of it would throw
 * FST_ERR_DEC_ALREADY_PRESENT synchronously inside Fastify's plugin loader, which nothing catches:
 * the process dies. This turns that registration into a plugin that fails with a clear error
 * instead, which `app.ready()` (or the awaited `register`) rejects with.
 */
export function refuseWebsocketAfterHub (fastify: FastifyInstance): void {
  const register = fastify.register as unknown as Register
  const guarded: Register = function registerAfterHub (plugin, options) {
    // `register(import('@fastify/websocket'))`: the module is known once the promise resolves.
    if (plugin instanceof Promise) return register.call(this, plugin.then(refused), options)
    return register.call(this, refused(plugin), options)
  }
  ;(fastify as unknown as { register: Register }).register = guarded
}
