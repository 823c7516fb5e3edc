/** Types of the Prometheus text parser the metrics tests check the hub's output with. */
declare module 'parse-prometheus-text-format' {
  /** A sample of a counter, gauge or untyped family. */
  export interface ParsedSample {
    value: string
    labels?: Record<string, string>
  }
  /** A histogram's labelled series: cumulative buckets by `le`, its count and sum. */
  export interface ParsedHistogram {
    buckets: Record<string, string>
    count: string
    sum: string
    labels?: Record<string, string>
  }
  /** One metric family. */
  export interface ParsedFamily {
    name: string
    help: string
    type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED'
    metrics: Array<ParsedSample | ParsedHistogram>
  }
  export default function parsePrometheusTextFormat (text: string): ParsedFamily[]
}
