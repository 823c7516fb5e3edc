import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import fastifyWsHub, { type FastifyWsHubOptions } from '../dist/index.js'
import { closeCodeLabel } from '../dist/metrics/close-codes.js'
import { Histogram } from '../dist/metrics/histogram.js'
import { renderText } from '../dist/metrics/text.js'
import { snakeCase } from '../dist/metrics/families.js'
import { namedError } from './helpers.js'

const badMetrics: Array<[string, unknown, RegExp]> = [
  ['metrics', 'yes', /expected true, false or an object, got "yes"/],
  ['metrics', null, /got null/],
  ['metrics', ['/metrics'], /got an array/],
  ['metrics.rout', { rout: '/metrics' }, /unknown option; did you mean "route"\?/],
  ['metrics.route', { route: 'metrics' }, /a path starting with "\/"/],
  ['metrics.route', { route: 5 }, /got number/],
  ['metrics.prefix', { prefix: '1bad' }, /metric name start/],
  ['metrics.prefix', { prefix: 7 }, /got number/],
  ['metrics.promClient', { promClient: true }, /'auto', false or the prom-client module/],
  ['metrics.promClient', { promClient: {} }, /got object/]
]

for (const [name, metrics, reason] of badMetrics) {
  test(`metrics ${JSON.stringify(metrics)} is refused at registration, naming ${name}`, async (t) => {
    const app = Fastify()
    t.after(() => app.close())
    app.register(fastifyWsHub, { metrics } as unknown as FastifyWsHubOptions)
    await assert.rejects(async () => { await app.ready() }, namedError('FST_WS_HUB_INVALID_OPTION', name, reason))
  })
}

test('metrics: true, an empty prefix and promClient false are taken', async (t) => {
  for (const metrics of [true, false, { prefix: '', promClient: false as const }, { route: false as const }]) {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(fastifyWsHub, { heartbeat: false, metrics })
    await app.ready()
    assert.match(await app.hub.metrics(), /connections 0\n/)
  }
})

test('close codes keep their number when standard and fold into 3xxx, 4xxx or other when the peer could pick them', () => {
  assert.deepEqual([1000, 1001, 1006, 1011, 1015, 1016, 2999, 3000, 3999, 4000, 4999, 5000, 0].map(closeCodeLabel),
    ['1000', '1001', '1006', '1011', '1015', 'other', 'other', '3xxx', '3xxx', '4xxx', '4xxx', 'other', 'other'])
})

test('label values and help are escaped so that the parser reads them back as they were', () => {
  const odd = 'a "quoted" \\ back\nslash'
  const text = renderText([
    { name: 'odd_total', help: 'help with \\ and\nnewline', type: 'counter', samples: [{ name: 'odd_total', labels: { what: odd }, value: 2 }] },
    { name: 'levels', help: 'infinities', type: 'gauge', samples: [{ name: 'levels', labels: { at: 'top' }, value: Number.POSITIVE_INFINITY }, { name: 'levels', labels: { at: 'bottom' }, value: Number.NEGATIVE_INFINITY }, { name: 'levels', labels: { at: 'none' }, value: Number.NaN }, { name: 'levels', labels: {}, value: 1.5 }] }
  ])
  assert.match(text, /^# HELP odd_total help with \\\\ and\\nnewline$/m)
  const [counter, gauge] = parsePrometheusTextFormat(text)
  assert.deepEqual(counter?.metrics, [{ value: '2', labels: { what: odd } }])
  assert.deepEqual(gauge?.metrics.map(metric => 'value' in metric ? metric.value : undefined), ['+Inf', '-Inf', 'NaN', '1.5'])
})

test('a histogram puts each value in the first bucket whose bound holds it, and beyond the last in +Inf', () => {
  const histogram = new Histogram([0.1, 1])
  for (const value of [0.05, 0.1, 0.5, 2]) histogram.observe(value)
  assert.deepEqual(histogram.counts, [2, 1, 1])
  assert.equal(histogram.count, 4)
  assert.equal(histogram.sum, 2.65)
})

test('adapter stat names become snake_case metric name parts', () => {
  assert.deepEqual(['published', 'receivedBytes', 'recoveryFailed', 'odd-name.x'].map(snakeCase), ['published', 'received_bytes', 'recovery_failed', 'odd_name_x'])
})
