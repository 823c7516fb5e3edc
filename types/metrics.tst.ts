import { subscribe } from 'node:diagnostics_channel'
import { expect, test } from 'tstyche'
import Fastify from 'fastify'
import * as promClient from 'prom-client'
import fastifyWsHub, {
  ChannelName,
  type Client,
  type ConnectionCloseMessage,
  type HandlerTraceContext,
  type MessageOutMessage,
  type MetricsOptions
} from '../dist/index.js'

const app = Fastify()

test('the metrics option takes true, a route, a prefix, and prom-client itself or false', () => {
  expect(app.register).type.toBeCallableWith(fastifyWsHub, { metrics: true })
  expect(app.register).type.toBeCallableWith(fastifyWsHub, { metrics: { route: '/metrics', prefix: 'chat_' } })
  expect(app.register).type.toBeCallableWith(fastifyWsHub, { metrics: { promClient: false } })
  expect(app.register).type.toBeCallableWith(fastifyWsHub, { metrics: { promClient: 'auto' } })
  // The application's own prom-client module fits the option.
  expect(app.register).type.toBeCallableWith(fastifyWsHub, { metrics: { promClient } })
  expect(app.register).type.not.toBeCallableWith(fastifyWsHub, { metrics: { route: 9090 } })
  expect(app.register).type.not.toBeCallableWith(fastifyWsHub, { metrics: { promClient: true } })
  expect<MetricsOptions['route']>().type.toBe<string | false | undefined>()
})

test('hub.metrics() resolves to the exposition text', () => {
  expect(app.hub.metrics()).type.toBe<Promise<string>>()
})

test('the channel names are literals, and the messages carry the client', () => {
  expect(ChannelName.connectionClose).type.toBe<'fastify-ws-hub:connection:close'>()
  expect(ChannelName.handler).type.toBe<'fastify-ws-hub:handler'>()
  subscribe(ChannelName.connectionClose, (message) => {
    const close = message as ConnectionCloseMessage
    expect(close.client).type.toBe<Client>()
    expect(close.code).type.toBe<number>()
  })
  expect<MessageOutMessage['data']>().type.toBe<Buffer>()
  expect<HandlerTraceContext['type']>().type.toBe<string>()
  expect<HandlerTraceContext['error']>().type.toBe<unknown>()
})
