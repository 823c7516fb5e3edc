/**
 * The handshake success message of the original Go hub, sent as a text frame to every client
 * right after it is registered (unless `handshakeMessage` says otherwise). Kept verbatim so that
 * existing front ends keep recognising it.
 */
export const WebsocketHandshakeSuccess = '{"code":2000,"msg":"ws连接成功","data":""}'

/** The payload of every server ping frame of the original Go hub, kept verbatim. */
export const WebsocketServerPingMsg = 'Server->Ping->Client'

/** Close codes the hub uses, named after RFC 6455 section 7.4.1. */
export const CloseCode = Object.freeze({
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  abnormal: 1006,
  invalidPayload: 1007,
  policyViolation: 1008,
  messageTooBig: 1009,
  internalError: 1011,
  tryAgainLater: 1013
})
