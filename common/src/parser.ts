/**
 * A Socket.IO parser built on msgpackr, used by both sides. Each packet becomes ONE binary websocket
 * message: chunk bytes ride inside the msgpack body instead of as separate attachments, so a chunk costs
 * one message and one decode. Standard msgpack only (`useRecords: false`) so any peer can decode it.
 *
 * The decoder rejects anything that is not a well-formed Socket.IO packet by throwing; Socket.IO then
 * closes that one connection and reports the error on the socket's "error" event.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Packr } from 'msgpackr';
import { frameAround } from './framed-bytes.js';

export const PacketType = {
  CONNECT: 0,
  DISCONNECT: 1,
  EVENT: 2,
  ACK: 3,
  CONNECT_ERROR: 4,
} as const;

export interface Packet {
  type: number;
  nsp: string;
  data?: unknown;
  id?: number;
}

/** Socket.IO protocol revision this parser speaks (same as socket.io-parser's). */
export const protocol = 5;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

/**
 * Event names Socket.IO (and the receiver's Session) use internally. A peer's EVENT packet naming one would
 * run those handlers with the peer's arguments (an "error" event with a null argument crashed the receiver),
 * so, like socket.io-parser, the decoder refuses them.
 */
const RESERVED_EVENTS = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener', 'error']);

export function isPacketValid(p: unknown): p is Packet {
  if (typeof p !== 'object' || p === null) return false;
  const { type, nsp, data, id } = p as Packet;
  if (typeof nsp !== 'string' || nsp.length > 256) return false;
  if (id !== undefined && !(Number.isSafeInteger(id) && id >= 0)) return false;
  switch (type) {
    case PacketType.CONNECT:
      return data === undefined || (typeof data === 'object' && data !== null && !Array.isArray(data));
    case PacketType.DISCONNECT:
      return data === undefined;
    case PacketType.EVENT:
      return Array.isArray(data) && data.length > 0 && typeof data[0] === 'string' && !RESERVED_EVENTS.has(data[0]);
    case PacketType.ACK:
      return Array.isArray(data) && id !== undefined;
    case PacketType.CONNECT_ERROR:
      return typeof data === 'object' && data !== null;
    default:
      return false;
  }
}

/** Stands in for a chunk's bytes while its envelope is packed; found again by its encoding (bin8, 8 bytes). */
const MARKER = randomBytes(8);
const MARKER_PACKED = Buffer.concat([Buffer.from([0xc4, MARKER.length]), MARKER]);

/** The bytes of an event's `{ ..., data: bytes }` argument (a chunk request), if it has them. */
function eventBytes(packet: Packet): Uint8Array | undefined {
  if (packet.type !== PacketType.EVENT || !Array.isArray(packet.data)) return undefined;
  const arg = packet.data[1] as { data?: unknown } | undefined;
  return typeof arg === 'object' && arg !== null && arg.data instanceof Uint8Array ? arg.data : undefined;
}

/**
 * The same message msgpackr would build (bytes as bin32), written around chunk bytes that have room for it
 * (see framed-bytes.ts) instead of copying them; undefined when they have not.
 */
function packInPlace(packet: Packet, bytes: Uint8Array): Buffer | undefined {
  const [event, arg, ...rest] = packet.data as [string, object, ...unknown[]];
  // Spreading keeps the key order: the marker sits where the bytes will.
  const envelope = packr.pack({ ...packet, data: [event, { ...arg, data: MARKER }, ...rest] });
  const at = envelope.indexOf(MARKER_PACKED);
  if (at < 0 || envelope.indexOf(MARKER_PACKED, at + 1) >= 0) return undefined;
  const head = Buffer.allocUnsafe(at + 5);
  envelope.copy(head, 0, 0, at);
  head[at] = 0xc6;
  head.writeUInt32BE(bytes.length, at + 1);
  return frameAround(bytes, head, envelope.subarray(at + MARKER_PACKED.length));
}

export class Encoder {
  encode(packet: Packet): Buffer[] {
    const bytes = eventBytes(packet);
    const inPlace = bytes && packInPlace(packet, bytes);
    return [inPlace ?? packr.pack(packet)];
  }
}

export class Decoder extends EventEmitter {
  add(chunk: unknown): void {
    let bytes: Uint8Array;
    if (chunk instanceof Uint8Array) bytes = chunk;
    else if (chunk instanceof ArrayBuffer) bytes = new Uint8Array(chunk);
    else throw new Error('invalid packet: expected a binary message');
    let packet: unknown;
    try {
      packet = packr.unpack(bytes);
    } catch (err) {
      throw new Error(`invalid packet: not msgpack (${(err as Error).message})`);
    }
    if (!isPacketValid(packet)) throw new Error('invalid packet: wrong shape');
    this.emit('decoded', packet);
  }

  destroy(): void {
    this.removeAllListeners();
  }
}

/** Pass as `parser` to both `new Server(...)` and `io(...)`. */
export const msgpackParser = { protocol, PacketType, Encoder, Decoder };

/**
 * The same parser, but telling `onInvalid` why a packet was refused before Socket.IO closes the
 * connection: a peer that sends garbage before its handshake completes has no socket to report it on.
 */
export function createParser(onInvalid: (reason: string) => void): typeof msgpackParser {
  class ReportingDecoder extends Decoder {
    override add(chunk: unknown): void {
      try {
        super.add(chunk);
      } catch (err) {
        onInvalid((err as Error).message);
        throw err;
      }
    }
  }
  return { protocol, PacketType, Encoder, Decoder: ReportingDecoder };
}
