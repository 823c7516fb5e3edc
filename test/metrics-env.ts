import assert from 'node:assert/strict'
import parsePrometheusTextFormat, { type ParsedFamily, type ParsedHistogram, type ParsedSample } from 'parse-prometheus-text-format'

export { parsePrometheusTextFormat }

/** The metric families of a text, read by a Prometheus text-format parser from npm; fails on a family named twice. */
export function parseMetrics (text: string): ParsedFamily[] {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a line feed')
  const families = parsePrometheusTextFormat(text)
  const names = families.map(family => family.name)
  assert.equal(new Set(names).size, names.length, `a family named twice in ${names.join(', ')}`)
  return families
}

function family (families: ParsedFamily[], name: string, type: ParsedFamily['type']): ParsedFamily {
  const found = families.find(candidate => candidate.name === name)
  assert.ok(found !== undefined, `no family ${name} in ${families.map(f => f.name).join(', ')}`)
  assert.equal(found.type, type, `type of ${name}`)
  assert.ok(found.help.length > 0, `${name} has help`)
  return found
}

function matches (labels: Record<string, string> | undefined, wanted: Record<string, string>): boolean {
  return Object.entries(wanted).every(([key, value]) => labels?.[key] === value)
}

/** The value of a counter or gauge's sample with these labels (undefined when there is none). */
export function sampleValue (families: ParsedFamily[], name: string, type: 'COUNTER' | 'GAUGE', labels: Record<string, string> = {}): number | undefined {
  const sample = (family(families, name, type).metrics as ParsedSample[]).find(metric => matches(metric.labels, labels))
  return sample === undefined ? undefined : Number(sample.value)
}

/**
 * A histogram series with these labels: its count, sum and cumulative buckets (undefined when there
 * is none). The parser folds every series of a labelled histogram into one (its `flattenMetrics`
 * keeps only the unlabelled count and sum), so each series is handed to it alone, its labels other
 * than `le` taken off; the whole text went through it in `parseMetrics` already.
 */
export function histogram (families: ParsedFamily[], name: string, labels: Record<string, string> = {}, text?: string): { count: number, sum: number, buckets: Map<string, number> } | undefined {
  family(families, name, 'HISTOGRAM')
  assert.ok(text !== undefined || Object.keys(labels).length === 0, 'a labelled histogram needs the text')
  const series = text === undefined
    ? (family(families, name, 'HISTOGRAM').metrics as ParsedHistogram[])[0]
    : seriesAlone(text, name, labels)
  if (series?.count === undefined) return undefined
  // Sorted by bound: an object puts integer-like keys ("1", "10") first.
  const entries = Object.entries(series.buckets).sort(([a], [b]) => Number(a.replace('+Inf', 'Infinity')) - Number(b.replace('+Inf', 'Infinity')))
  const buckets = new Map(entries.map(([le, count]) => [le, Number(count)]))
  const counts = [...buckets.values()]
  assert.ok(counts.every((count, index) => index === 0 || count >= (counts[index - 1] as number)), `${name} buckets are cumulative`)
  assert.equal(buckets.get('+Inf'), Number(series.count), `${name} +Inf bucket equals its count`)
  return { count: Number(series.count), sum: Number(series.sum), buckets }
}

function escapeLabel (value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

/** The one series of a histogram with these labels, parsed on its own (see `histogram`). */
function seriesAlone (text: string, name: string, labels: Record<string, string>): ParsedHistogram | undefined {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${escapeLabel(value)}"`)
  const lines = text.split('\n').filter(line => line.startsWith(`${name}_`) && wanted.every(pair => line.includes(pair)))
  if (lines.length === 0) return undefined
  const stripped = lines.map(line => wanted.reduce((current, pair) => current.replace(pair, ''), line).replace(/\{,*/, '{').replace(/,*\}/, '}').replace('{}', ''))
  const alone = parsePrometheusTextFormat(`# HELP ${name} series\n# TYPE ${name} histogram\n${stripped.join('\n')}\n`)
  return alone[0]?.metrics[0] as ParsedHistogram | undefined
}
