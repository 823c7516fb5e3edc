// Prints the minified and gzipped size of the hub's client beside socket.io-client's and
// centrifuge-js's, each bundled the same way: esbuild --bundle --minify --format=esm for a
// browser, then gzip at its default level. Run after `npm run build`:
//   node --import tsx scripts/client-size.ts
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'

const root = fileURLToPath(new URL('..', import.meta.url))

/** The clients compared, each as the module an application imports. */
export const clients = [
  { name: 'fastify-ws-hub/client', entry: './dist/client/index.js' },
  { name: 'socket.io-client', entry: 'socket.io-client' },
  { name: 'centrifuge', entry: 'centrifuge' }
]

/** Bytes of a module bundled with everything it imports, minified, then gzipped. */
export async function measure (entry: string): Promise<{ minified: number, gzipped: number }> {
  const result = await build({
    stdin: { contents: `export * from ${JSON.stringify(entry)}`, resolveDir: root, loader: 'js' },
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'silent'
  })
  const code = result.outputFiles[0]?.contents ?? new Uint8Array()
  return { minified: code.byteLength, gzipped: gzipSync(code).byteLength }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log('| client | minified | minified + gzipped |')
  console.log('|---|---:|---:|')
  for (const { name, entry } of clients) {
    const { minified, gzipped } = await measure(entry)
    console.log(`| ${name} | ${minified} B | ${gzipped} B |`)
  }
}
