import type { MetricFamily } from './families.ts'

/** The content type of the Prometheus text exposition format that `renderText` writes. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/** HELP text escaping of the format: backslash and line feed. */
function escapeHelp (text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

/** Label value escaping of the format: backslash, double quote and line feed. */
export function escapeLabelValue (value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

/** A sample value as the format writes it (Go's float spelling for the infinities and NaN). */
function formatValue (value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Number.POSITIVE_INFINITY) return '+Inf'
  if (value === Number.NEGATIVE_INFINITY) return '-Inf'
  return String(value)
}

/**
 * Writes metric families in the Prometheus text exposition format 0.0.4: for each family its
 * `# HELP` and `# TYPE` lines, then its samples; a line feed after every line.
 */
export function renderText (families: readonly MetricFamily[]): string {
  let text = ''
  for (const family of families) {
    text += `# HELP ${family.name} ${escapeHelp(family.help)}\n# TYPE ${family.name} ${family.type}\n`
    for (const sample of family.samples) {
      let labels = ''
      if (sample.labels !== undefined) {
        const pairs = Object.entries(sample.labels).map(([name, value]) => `${name}="${escapeLabelValue(value)}"`)
        if (pairs.length > 0) labels = `{${pairs.join(',')}}`
      }
      text += `${sample.name}${labels} ${formatValue(sample.value)}\n`
    }
  }
  return text
}
