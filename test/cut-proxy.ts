// A loopback TCP proxy that tests put between a websocket client and a hub node, to fail the
// network between them the way a real network fails: not with a clean close.
//
// `cut()` resets every client-side connection (the client sees an abnormal close, 1006) but keeps
// each server-side connection OPEN and silent: what the server writes is read and thrown away,
// nothing is forwarded either way, and the server gets neither FIN nor RST, so it believes the
// client is still there until its heartbeat finds out (or its own writes fail). While cut, new
// connections are reset at once, so a reconnecting client keeps failing until `restore()`.
// `retarget(port)` sends the connections made after it to another node (a failover).
import net from 'node:net'

/** Where a proxied connection stands. */
export type CutLinkState =
  /** The upstream connection is being made; what the client sends waits. */
  | 'connecting'
  /** Bytes flow both ways. */
  | 'open'
  /** Cut: the client side is gone, the server side is open and black-holed. */
  | 'blackholed'
  /** Both sides are gone. */
  | 'closed'

/** One client connection through the proxy and its server-side twin. */
export interface CutLink {
  /** The accepted socket, the client's side. */
  readonly client: net.Socket
  /** The proxy's connection to the target, the server's side. */
  readonly upstream: net.Socket
  /** The target port this link was made to (retarget() does not move existing links). */
  readonly targetPort: number
  readonly state: CutLinkState
  /** Bytes the server wrote after the cut, read by the proxy and thrown away. */
  readonly discardedBytes: number
}

/** A proxy started by `startCutProxy`. */
export interface CutProxy {
  /** The loopback port clients connect to. */
  readonly port: number
  /** The port new connections go to. */
  readonly targetPort: number
  /** True between `cut()` and `restore()`. */
  readonly isCut: boolean
  /** Every link not yet closed, in the order they were accepted. */
  readonly connections: readonly CutLink[]
  /** Connections refused (reset at once) while cut. */
  readonly refused: number
  /**
   * Fails the network: resets every client side, black-holes every server side (kept open, read
   * and discarded, never ended), and refuses new connections until `restore()`. A link whose
   * upstream was still connecting is closed on both sides (the server has seen nothing of it).
   */
  cut (): void
  /** Lets new connections through again; links black-holed by the cut stay black-holed. */
  restore (): void
  /** Sends the connections made from now on to `port`; existing links keep their target. */
  retarget (port: number): void
  /** Closes the listener and destroys every socket, black-holed ones included. */
  close (): Promise<void>
}

const LOOPBACK = '127.0.0.1'

/** A link's mutable record; `CutLink` is its read-only face. */
interface LinkRecord extends CutLink {
  state: CutLinkState
  discardedBytes: number
}

/**
 * Starts a proxy on a free loopback port that forwards to `targetPort` on 127.0.0.1.
 * @param targetPort the port of the server (a hub node) that connections go to
 * @returns the proxy, listening
 */
export async function startCutProxy (targetPort: number): Promise<CutProxy> {
  let target = targetPort
  let isCut = false
  let refused = 0
  const links = new Set<LinkRecord>()

  /** Ends both sides of a link, whatever its state. */
  function finish (link: LinkRecord): void {
    if (link.state === 'closed') return
    link.state = 'closed'
    links.delete(link)
    link.client.destroy()
    link.upstream.destroy()
  }

  /** Cuts one link: the client gets an RST, the server side is kept open and drained. */
  function cutLink (link: LinkRecord): void {
    if (link.state === 'connecting') {
      finish(link)
      return
    }
    if (link.state !== 'open') return
    link.state = 'blackholed'
    link.client.unpipe(link.upstream)
    link.upstream.unpipe(link.client)
    link.client.resetAndDestroy()
    // Read and discard: the server's writes keep succeeding, so it learns nothing from them.
    link.upstream.on('data', (chunk: Buffer) => { link.discardedBytes += chunk.length })
    link.upstream.resume()
  }

  const server = net.createServer({ noDelay: true }, (client) => {
    if (isCut) {
      refused++
      client.on('error', () => {})
      client.resetAndDestroy()
      return
    }
    const upstream = net.connect({ port: target, host: LOOPBACK, noDelay: true })
    const link: LinkRecord = { client, upstream, targetPort: target, state: 'connecting', discardedBytes: 0 }
    links.add(link)
    client.pause()
    upstream.once('connect', () => {
      if (link.state !== 'connecting') return
      link.state = 'open'
      client.pipe(upstream)
      upstream.pipe(client)
      client.resume()
    })
    // The client side going away (before a cut) closes the server side too, as a plain proxy would;
    // after a cut the client side is ours to destroy and the server side must stay.
    const clientGone = (): void => { if (link.state !== 'blackholed') finish(link) }
    client.on('error', clientGone).on('close', clientGone)
    // The server ending or failing closes the link in every state: a black-holed link's server
    // has found out (its heartbeat), which is what the test waits for.
    const upstreamGone = (): void => finish(link)
    upstream.on('error', upstreamGone).on('close', upstreamGone)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, LOOPBACK, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as net.AddressInfo

  return {
    port,
    get targetPort () { return target },
    get isCut () { return isCut },
    get connections () { return [...links] },
    get refused () { return refused },
    cut () {
      isCut = true
      for (const link of [...links]) cutLink(link)
    },
    restore () {
      isCut = false
    },
    retarget (next: number) {
      target = next
    },
    async close () {
      for (const link of [...links]) finish(link)
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
