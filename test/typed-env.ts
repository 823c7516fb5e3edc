import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { Type, type FastifyWsHubOptions } from '../dist/index.js'
import { connect, createApp, listen, type TestClient } from './helpers.js'

/** The chat of issue 9, the schemas shared by the typed tests. */
export const schemas = {
  say: Type.Object({ text: Type.String({ minLength: 1, maxLength: 500 }) }),
  join: Type.Object({ room: Type.String({ pattern: '^[a-z0-9-]{1,32}$' }) }),
  said: Type.Object({ from: Type.String(), text: Type.String() }),
  joined: Type.Object({ joined: Type.String() })
}

/** A typed test client: sends messages as JSON and reads frames as JSON. */
export interface TypedTestClient extends TestClient {
  /** Sends a message frame (any value as JSON, a string as it is). */
  sendJson (frame: unknown): void
  /** Waits for the first `count` frames and returns them parsed. */
  frames (count: number): Promise<unknown[]>
}

/** Connects to a typed route of an app made with `handshakeMessage: false`. */
export async function connectTyped (url: string): Promise<TypedTestClient> {
  const client = await connect(url)
  return Object.assign(client, {
    sendJson (frame: unknown): void {
      client.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
    },
    async frames (count: number): Promise<unknown[]> {
      return (await client.received(count)).map(text => JSON.parse(text) as unknown)
    }
  })
}

/** An app with no handshake message and no heartbeat, listening, closed after the test. */
export async function typedApp (t: TestContext, options: FastifyWsHubOptions = {}): Promise<{ app: FastifyInstance, url: string, ready: () => Promise<string> }> {
  const app = await createApp(t, { handshakeMessage: false, ...options })
  return { app, url: '', ready: () => listen(app) }
}
