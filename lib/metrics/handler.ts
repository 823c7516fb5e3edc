import { performance } from 'node:perf_hooks'
import type { Client } from '../client.ts'
import { isPromiseLike } from '../read-loop.ts'
import { handlerChannel, type HandlerTraceContext } from './channels.ts'
import type { HubMetrics } from './recorder.ts'

function noop (): void {}

/** Whether handlers are to be timed or traced now: when not, callers call them directly. */
export function observingHandlers (metrics: HubMetrics | undefined): boolean {
  return metrics !== undefined || handlerChannel.hasSubscribers
}

/**
 * Calls a message handler, timed into `handler_duration_seconds` when metrics are on and traced
 * on the `fastify-ws-hub:handler` tracing channel when someone subscribes. Returns what the handler
 * returned and throws what it threw, so that the caller's error handling is unchanged. With
 * neither on, it is a plain call.
 * @param metrics the hub's histograms; undefined when metrics are off
 * @param type the message type, or `onMessage`
 */
export function callHandler (metrics: HubMetrics | undefined, client: Client, type: string, data: unknown, call: () => unknown): unknown {
  const traced = handlerChannel.hasSubscribers
  if (metrics === undefined && !traced) return call()
  const started = performance.now()
  const done = metrics === undefined
    ? noop
    : () => metrics.observeHandler(type, (performance.now() - started) / 1000)
  if (!traced) {
    let result: unknown
    try {
      result = call()
    } catch (error) {
      done()
      throw error
    }
    if (isPromiseLike(result)) result.then(done, done)
    else done()
    return result
  }
  return trace({ client, type, data }, call, done)
}

/** Runs the handler inside the tracing channel's events, as `tracingChannel.tracePromise` would for a promise and `traceSync` otherwise. */
function trace (context: HandlerTraceContext, call: () => unknown, done: () => void): unknown {
  const { start, end, asyncStart, asyncEnd, error: failed } = handlerChannel
  return start.runStores(context, () => {
    let result: unknown
    try {
      result = call()
      if (!isPromiseLike(result)) {
        context.result = result
        done()
      }
    } catch (error) {
      context.error = error
      failed.publish(context)
      done()
      throw error
    } finally {
      end.publish(context)
    }
    if (!isPromiseLike(result)) return result
    // A branch of its own, so that the caller's handling of a rejection stays the only one.
    result.then((value) => {
      context.result = value
      done()
      asyncStart.publish(context)
      asyncEnd.publish(context)
    }, (error: unknown) => {
      context.error = error
      done()
      failed.publish(context)
      asyncStart.publish(context)
      asyncEnd.publish(context)
    })
    return result
  })
}
