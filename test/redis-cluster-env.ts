import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { rmSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { Cluster, Redis, type ClusterOptions } from 'ioredis'
import { eventually, freePort, reachable } from './redis-env.js'

/** One node of a test cluster, as ioredis and redis-cli name it. */
export interface ClusterNodeAddress {
  readonly host: '127.0.0.1'
  readonly port: number
}

/** How `startRedisCluster` builds the cluster. */
export interface RedisClusterOptions {
  /** Masters, each with a share of the 16384 slots; at least 3, as redis-cli refuses fewer. Default 3. */
  masters?: number
  /** Replicas of each master, the ones that take over when it dies. Default 0. */
  replicasPerMaster?: number
  /**
   * `cluster-node-timeout` in ms: how long a node may be silent before it is failed and its replica
   * promoted. Default 1000, so that a failover takes about two seconds rather than Redis's fifteen.
   */
  nodeTimeout?: number
  /** More redis-server arguments for every node, after the harness's own (e.g. `--cluster-require-full-coverage no`). */
  args?: string[]
  /** How long the cluster may take to form, in ms. Default 20000. */
  readyTimeoutMs?: number
}

/** A Redis Cluster of the test's own, every node a redis-server child process. */
export interface RedisCluster {
  /** Every node started, masters and replicas, in the order given to redis-cli (killed ones too). */
  readonly nodes: readonly ClusterNodeAddress[]
  /** The nodes for `new Cluster(startupNodes)`; a fresh array each time, as ioredis may keep it. */
  readonly startupNodes: Array<{ host: string, port: number }>
  /**
   * The ports of the masters as a live node sees them in CLUSTER NODES, ordered by their lowest slot
   * (a master flagged failed is left out).
   */
  masterPorts (): Promise<number[]>
  /** The port of the master that serves the slot of `key` (a key or a sharded channel) as a live node sees it. */
  masterFor (key: string): Promise<number>
  /**
   * An ioredis Cluster on these nodes with the given options, an error listener of its own (so a
   * failover's errors do not crash the test; add yours to see them), disconnected by `stop()`
   * before the servers go.
   */
  client (options?: ClusterOptions): Cluster
  /** Kills one node's redis-server with SIGKILL (no goodbye to its clients or peers) and waits until it is gone. */
  kill (port: number): Promise<void>
  /**
   * After `kill(port)` of a master: waits until every live node says `cluster_state:ok` and agrees that
   * the killed master's slots are served by a live master (its promoted replica). Resolves with that
   * master's port; fails after `timeoutMs` saying what it saw last.
   */
  waitForFailover (killedPort: number, timeoutMs?: number): Promise<number>
  /** Disconnects the clients of `client()`, kills every node and removes the temp dir; idempotent. Runs after the test anyway. */
  stop (): Promise<void>
}

let available: boolean | undefined

/** Whether `redis-server` and `redis-cli` are on PATH, so that a cluster can be started (checked once). */
export function clusterAvailable (): boolean {
  available ??= ['redis-server', 'redis-cli'].every(binary => spawnSync(binary, ['--version'], { stdio: 'ignore' }).status === 0)
  return available
}

/** Every cluster node and temp dir of this process, killed and removed when it exits whatever happened. */
const running = new Set<ChildProcess>()
const dirs = new Set<string>()
let exitHooked = false

function cleanUpNow (): void {
  for (const child of running) child.kill('SIGKILL')
  running.clear()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  dirs.clear()
}

function hookExit (): void {
  if (exitHooked) return
  exitHooked = true
  process.on('exit', cleanUpNow)
  // 'exit' is not emitted when a signal ends the process (the test runner's SIGTERM, say), so clean up
  // on those too and then die of the signal as before; the children would outlive us otherwise.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      cleanUpNow()
      process.kill(process.pid, signal)
    })
  }
}

/** One line of CLUSTER NODES. */
interface NodeLine {
  id: string
  port: number
  flags: string[]
  masterId: string
  linkState: string
  /** Slot ranges served, inclusive; importing and migrating markers left out. */
  slots: Array<[number, number]>
}

function parseClusterNodes (text: string): NodeLine[] {
  return text.trim().split('\n').map(line => {
    const [id = '', address = '', flags = '', masterId = '', , , , linkState = '', ...slots] = line.trim().split(' ')
    // address is ip:port@cport[,hostname]
    const port = Number(address.split('@')[0]?.split(':').at(-1))
    return {
      id,
      port,
      flags: flags.split(','),
      masterId,
      linkState,
      slots: slots.filter(slot => !slot.startsWith('[')).map(slot => {
        const [from, to = from] = slot.split('-').map(Number) as [number, number?]
        return [from, to]
      })
    }
  })
}

function isFailed (node: NodeLine): boolean {
  return node.flags.includes('fail') || node.flags.includes('fail?')
}

/** The masters serving slots, as `port:ranges` sorted by lowest slot; equal strings mean an equal slot map. */
function slotMap (view: NodeLine[]): string {
  return view
    .filter(node => node.flags.includes('master') && node.slots.length > 0)
    .sort((a, b) => (a.slots[0]?.[0] ?? 0) - (b.slots[0]?.[0] ?? 0))
    .map(node => `${node.port}:${node.slots.map(([from, to]) => `${from}-${to}`).join(',')}`)
    .join(' ')
}

function servedBy (view: NodeLine[], slot: number): NodeLine | undefined {
  return view.find(node => node.flags.includes('master') && node.slots.some(([from, to]) => slot >= from && slot <= to))
}

/** Two free ports no other node of this cluster has (freePort may hand one out twice). */
async function freshPort (taken: Set<number>): Promise<number> {
  for (;;) {
    const port = await freePort()
    if (!taken.has(port)) {
      taken.add(port)
      return port
    }
  }
}

/** Runs a program to its end with its output collected; kills it after `timeoutMs`. */
async function run (command: string, args: string[], timeoutMs: number): Promise<{ code: number | null, output: string }> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  let output = ''
  child.stdout.on('data', chunk => { output += String(chunk) })
  child.stderr.on('data', chunk => { output += String(chunk) })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const [code] = await once(child, 'exit') as [number | null]
  clearTimeout(timer)
  running.delete(child)
  return { code, output }
}

async function logTail (file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim().split('\n').slice(-5).join('\n')
  } catch {
    return '(no log)'
  }
}

/**
 * Starts a Redis Cluster of `masters` masters with `replicasPerMaster` replicas each, every node a
 * redis-server child process on free loopback ports with its files in a temp dir of its own, and waits
 * until every node says `cluster_state:ok`, all 16384 slots are assigned, all nodes agree on who serves
 * them and every replica is linked to its master. It is stopped after the test (and when the process
 * exits, whatever happened).
 *
 * `cluster-require-full-coverage` stays at Redis's default, yes: while a dead master's slots are not yet
 * taken over, the whole cluster answers CLUSTERDOWN, which is what clients meet in production; pass
 * `args: ['--cluster-require-full-coverage', 'no']` for a cluster that serves the other slots meanwhile.
 */
export async function startRedisCluster (t: TestContext, options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const { masters = 3, replicasPerMaster = 0, nodeTimeout = 1000, args = [], readyTimeoutMs = 20000 } = options
  if (!clusterAvailable()) throw new Error('startRedisCluster needs redis-server and redis-cli on PATH (check clusterAvailable() first)')
  if (masters < 3) throw new Error(`redis-cli --cluster create needs at least 3 masters, not ${masters}`)
  hookExit()
  const dir = await mkdtemp(join(tmpdir(), 'fwh-redis-cluster-'))
  dirs.add(dir)
  const children = new Map<number, ChildProcess>()
  const admins = new Map<number, Redis>()
  const clients = new Set<Cluster>()
  /** Killed masters: their node id and the slots they served, to know when others serve them. */
  const killed = new Map<number, NodeLine>()
  const taken = new Set<number>()
  let stopped = false

  async function stop (): Promise<void> {
    if (stopped) return
    stopped = true
    for (const client of clients) client.disconnect()
    for (const admin of admins.values()) admin.disconnect()
    await Promise.all([...children.values()].map(killChild))
    children.clear()
    await rm(dir, { recursive: true, force: true })
    dirs.delete(dir)
  }
  t.after(stop)

  async function killChild (child: ChildProcess): Promise<void> {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    }
    running.delete(child)
  }

  /** Starts one node; tries other ports if the chosen ones were taken meanwhile. */
  async function startNode (): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      const port = await freshPort(taken)
      // The bus port is set rather than left at port + 10000, which is past 65535 for many free ports.
      const busPort = await freshPort(taken)
      const log = join(dir, `redis-${port}.log`)
      const child = spawn('redis-server', [
        '--port', String(port),
        '--bind', '127.0.0.1',
        '--cluster-enabled', 'yes',
        '--cluster-port', String(busPort),
        '--cluster-config-file', join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout', String(nodeTimeout),
        '--dir', dir,
        '--logfile', log,
        '--save', '',
        '--appendonly', 'no',
        // A master waits 5 s by default for more replicas before a full sync; ours come at once.
        '--repl-diskless-sync-delay', '0',
        '--daemonize', 'no',
        ...args
      ], { cwd: dir, stdio: 'ignore' })
      running.add(child)
      const deadline = Date.now() + 5000
      while (child.exitCode === null && !await reachable(`redis://127.0.0.1:${port}`)) {
        if (Date.now() > deadline) {
          await killChild(child)
          throw new Error(`redis-server on port ${port} did not answer within 5 s; its log ends:\n${await logTail(log)}`)
        }
        await new Promise(resolve => setTimeout(resolve, 20))
      }
      if (child.exitCode === null) {
        children.set(port, child)
        // A sibling failed and stop() ran while this one was starting.
        if (stopped) await killChild(child)
        return port
      }
      running.delete(child)
      const tail = await logTail(log)
      if (attempt === 3 || !tail.includes('in use')) throw new Error(`redis-server on port ${port} exited with ${child.exitCode}; its log ends:\n${tail}`)
    }
  }

  /** A connection of the harness's own to one node, for CLUSTER INFO and the like; never retried. */
  function admin (port: number): Redis {
    let redis = admins.get(port)
    if (redis === undefined || redis.status === 'end') {
      redis = new Redis({ host: '127.0.0.1', port, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 2000, commandTimeout: 2000 })
      redis.on('error', () => {})
      admins.set(port, redis)
    }
    return redis
  }

  function livePorts (): number[] {
    return [...children.keys()].filter(port => !killed.has(port))
  }

  async function view (port: number): Promise<NodeLine[]> {
    return parseClusterNodes(await admin(port).call('CLUSTER', 'NODES') as string)
  }

  /** A live node's view of the cluster, from the first that answers. */
  async function anyView (): Promise<NodeLine[]> {
    let last: unknown
    for (const port of livePorts()) {
      try {
        return await view(port)
      } catch (error) {
        last = error
      }
    }
    throw new Error('no live node of the cluster answers CLUSTER NODES', { cause: last })
  }

  /**
   * What keeps the cluster from being settled, or undefined when it is: every live node says ok, has
   * every slot assigned, and sees the same slot map; `extra` checks one node's view further.
   */
  async function unsettled (extra: (port: number, view: NodeLine[]) => Promise<string | undefined> | string | undefined): Promise<string | undefined> {
    let agreed: string | undefined
    for (const port of livePorts()) {
      let info: string
      let nodes: NodeLine[]
      try {
        info = await admin(port).call('CLUSTER', 'INFO') as string
        nodes = await view(port)
      } catch (error) {
        return `node ${port} does not answer: ${(error as Error).message}`
      }
      const state = /cluster_state:(\w+)/.exec(info)?.[1]
      if (state !== 'ok') return `node ${port} says cluster_state:${state}`
      const assigned = /cluster_slots_assigned:(\d+)/.exec(info)?.[1]
      if (assigned !== '16384') return `node ${port} says cluster_slots_assigned:${assigned}`
      const map = slotMap(nodes)
      if (agreed === undefined) agreed = map
      else if (map !== agreed) return `node ${port} sees slots ${map}, another node ${agreed}`
      const reason = await extra(port, nodes)
      if (reason !== undefined) return reason
    }
    return undefined
  }

  /** Polls `unsettled` until it is settled; the timeout error says what it saw last. */
  async function settle (timeoutMs: number, what: string, extra: Parameters<typeof unsettled>[0]): Promise<void> {
    let last: string | undefined = 'nothing checked yet'
    try {
      await eventually(async () => (last = await unsettled(extra)) === undefined, timeoutMs, what)
    } catch (error) {
      throw new Error(`${(error as Error).message}; last seen: ${last}`)
    }
  }

  const total = masters * (1 + replicasPerMaster)
  const ports = await Promise.all(Array.from({ length: total }, startNode))
  const created = await run('redis-cli', [
    '--cluster', 'create', ...ports.map(port => `127.0.0.1:${port}`),
    '--cluster-replicas', String(replicasPerMaster),
    '--cluster-yes'
  ], readyTimeoutMs)
  if (created.code !== 0) throw new Error(`redis-cli --cluster create exited with ${created.code}:\n${created.output}`)

  // redis-cli returns once the slots are given out; the nodes still have to hear of each other,
  // agree, and the replicas to sync, before a failover can work.
  await settle(readyTimeoutMs, `a cluster of ${masters} masters and ${replicasPerMaster} replicas each to form`, async (port, nodes) => {
    const known = nodes.filter(node => !node.flags.includes('handshake') && !node.flags.includes('noaddr'))
    if (known.length !== total) return `node ${port} knows ${known.length} of ${total} nodes`
    const bad = nodes.find(node => isFailed(node) || node.linkState !== 'connected')
    if (bad !== undefined) return `node ${port} sees node ${bad.port} as ${bad.flags.join(',')} ${bad.linkState}`
    const masterNodes = nodes.filter(node => node.flags.includes('master'))
    if (masterNodes.length !== masters) return `node ${port} sees ${masterNodes.length} masters`
    for (const master of masterNodes) {
      const replicas = nodes.filter(node => node.masterId === master.id).length
      if (replicas !== replicasPerMaster) return `node ${port} sees ${replicas} replicas of master ${master.port}`
    }
    const myself = nodes.find(node => node.flags.includes('myself'))
    if (myself?.flags.includes('slave') === true) {
      // A replica that never synced may be too stale to be promoted (cluster-replica-validity-factor).
      const role = await admin(port).call('ROLE') as [string, string, number, string]
      if (role[3] !== 'connected') return `replica ${port} is ${role[3]} to its master`
    }
    return undefined
  })

  return {
    nodes: ports.map(port => ({ host: '127.0.0.1', port })),
    get startupNodes () {
      return ports.map(port => ({ host: '127.0.0.1', port }))
    },
    async masterPorts () {
      return (await anyView())
        .filter(node => node.flags.includes('master') && !isFailed(node))
        .sort((a, b) => (a.slots[0]?.[0] ?? 16384) - (b.slots[0]?.[0] ?? 16384))
        .map(node => node.port)
    },
    async masterFor (key) {
      const port = livePorts()[0]
      if (port === undefined) throw new Error('no live node of the cluster')
      const slot = await admin(port).call('CLUSTER', 'KEYSLOT', key) as number
      const master = servedBy(await anyView(), slot)
      if (master === undefined) throw new Error(`no master serves slot ${slot} of ${JSON.stringify(key)}`)
      return master.port
    },
    client (clientOptions) {
      const client = new Cluster(ports.map(port => ({ host: '127.0.0.1', port })), clientOptions)
      client.on('error', () => {})
      clients.add(client)
      return client
    },
    async kill (port) {
      const child = children.get(port)
      if (child === undefined) throw new Error(`no node of this cluster on port ${port}`)
      if (killed.has(port)) return
      // Who it is and what it serves, from itself, while it can still say.
      const myself = (await view(port)).find(node => node.flags.includes('myself'))
      if (myself === undefined) throw new Error(`node ${port} does not list itself in CLUSTER NODES`)
      killed.set(port, myself)
      admins.get(port)?.disconnect()
      admins.delete(port)
      await killChild(child)
    },
    async waitForFailover (killedPort, timeoutMs = 15000) {
      const dead = killed.get(killedPort)
      if (dead === undefined) throw new Error(`node ${killedPort} was not killed with kill(), so there is no failover to wait for`)
      if (!dead.flags.includes('master') || dead.slots.length === 0) throw new Error(`node ${killedPort} was not a master serving slots, so there is no failover to wait for`)
      const [firstSlot] = dead.slots[0] as [number, number]
      let promoted = 0
      await settle(timeoutMs, `the slots of killed master ${killedPort} to be taken over`, (port, nodes) => {
        for (const [from, to] of dead.slots) {
          for (const slot of [from, to]) {
            const owner = servedBy(nodes, slot)
            if (owner === undefined) return `node ${port} sees no master for slot ${slot}`
            if (owner.id === dead.id || killed.has(owner.port)) return `node ${port} still sees slot ${slot} on killed master ${owner.port}`
          }
        }
        promoted = servedBy(nodes, firstSlot)?.port ?? 0
        return undefined
      })
      return promoted
    },
    stop
  }
}
