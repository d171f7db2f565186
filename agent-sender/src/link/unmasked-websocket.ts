/**
 * The Node websocket transport of engine.io-client with an all-zero masking key. RFC 6455 has clients mask
 * every frame so that a script in a browser cannot make a proxy that does not understand websockets read
 * its bytes as HTTP; a sender agent is not a browser running foreign scripts, and with an all-zero key the
 * `ws` library sends the chunk bytes as they are, instead of copying every megabyte into a fresh masked
 * buffer. Receivers see ordinary masked frames (a key of 0 is a valid key): nothing changes on the wire
 * format or on the receiving side.
 */
import { NodeWebSocket } from 'engine.io-client';

const zeroMask = (mask: Buffer): void => void mask.fill(0);

export class UnmaskedWebSocket extends NodeWebSocket {
  override createSocket(uri: string, protocols: string | string[] | undefined, opts: Record<string, unknown>): unknown {
    return super.createSocket(uri, protocols, { ...opts, generateMask: zeroMask });
  }
}
