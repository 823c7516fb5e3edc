import type { Socket } from 'node:net'

const SERVICE_UNAVAILABLE = 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: application/json\r\n' +
  'Content-Length: 80\r\n\r\n{"error":"Service Unavailable","message":"Service Unavailable","statusCode":503}'

/**
 * Answers an upgrade request 503 on its raw connection and closes it, whatever Fastify is doing
 * with the request: during shutdown an upgrade is refused at once, and one whose hooks outlived
 * `shutdownTimeout` is cut off this way.
 */
export function refuseUpgrade (socket: Socket): void {
  if (socket.destroyed) return
  socket.on('error', () => socket.destroy())
  socket.end(SERVICE_UNAVAILABLE)
  socket.destroySoon()
}
