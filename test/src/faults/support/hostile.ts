/**
 * Random and mutated packets for the hostile-frames scenario. Each generator returns the bytes of one
 * websocket message; most are well-formed Socket.IO packets carrying bad relay frames (the receiver must
 * answer them with an error and carry on), the rest are broken at the packet level (the receiver must
 * drop that one connection).
 */
import { randomBytes } from 'node:crypto';
import { packr, PT, WIRE } from './wire.js';

export interface HostileContext {
  /** A real transfer id from an accepted offer on this connection, if any. */
  id?: string;
  size: number;
  nextId: () => number;
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
const int = (n: number): number => Math.floor(Math.random() * n);

/** A value of a random type, for fields that expect something else. */
export function randomValue(depth = 0): unknown {
  switch (int(depth > 2 ? 9 : 11)) {
    case 0: return null;
    case 1: return int(2) === 0;
    case 2: return -int(1e9);
    case 3: return Math.random() * 1e300;
    case 4: return Number.MAX_SAFE_INTEGER + int(1000);
    case 5: return randomBytes(int(64)).toString('latin1');
    case 6: return randomBytes(int(256));
    case 7: return '../'.repeat(int(20)) + 'etc/passwd';
    case 8: return 'x'.repeat(int(20_000));
    case 9: return Array.from({ length: int(5) }, () => randomValue(depth + 1));
    default: return Object.fromEntries(Array.from({ length: int(5) }, () => [pick(['transfer', 'lease', 'offset', 'data', 'crc', 'name', 'size', 'sha256', 'seq', '__proto__', 'constructor']), randomValue(depth + 1)]));
  }
}

const event = (name: string, frame: unknown, id?: number): Buffer => packr.pack({ type: PT.EVENT, nsp: '/', data: [name, frame], ...(id === undefined ? {} : { id }) });

const knownEvents = Object.values(WIRE.events);

/** A packet whose relay frame is bad but whose Socket.IO framing is fine (answered with an error). */
function badFrame(ctx: HostileContext): [string, Buffer] {
  const id = ctx.nextId();
  const data = randomBytes(int(65_536));
  switch (int(10)) {
    case 0: return ['wrong types', event(pick(knownEvents), randomValue(), id)];
    case 1: return ['chunk for an unknown transfer', event(WIRE.events.chunk, WIRE.chunk(randomBytes(8).toString('hex'), 0, data), id)];
    case 2: {
      const offset = pick([ctx.size + 1, ctx.size + 2 ** 40, -1, -4096, 0.5, 2 ** 53, Number.MAX_VALUE, ctx.size - 1, int(ctx.size * 4)]);
      return ['chunk offset outside the file', event(WIRE.events.chunk, WIRE.chunk(ctx.id ?? 'none', offset, data), id)];
    }
    case 3: {
      const frame = WIRE.chunk(ctx.id ?? 'none', int(ctx.size), data);
      frame.crc = (frame.crc as number) ^ (1 + int(0xffff)); // a wrong checksum
      return ['chunk with a wrong crc', event(WIRE.events.chunk, frame, id)];
    }
    case 4: {
      const name = pick(['../escape.bin', '/etc/passwd', 'a\u0000b', '.relay-partial/x', 'x/'.repeat(300) + 'y', '', '.', 'con\nsole', 'ok/' + 'n'.repeat(5000)]);
      const size = pick([-1, 1e20, 2 ** 60, 0.5, NaN, Infinity, 1024]);
      return ['offer with a bad name or size', event(WIRE.events.offer, { ...WIRE.offer(name, 1), size }, id)];
    }
    case 5: return pick([
      ['commit with a wrong sha256', event(WIRE.events.commit, WIRE.commit(pick([ctx.id ?? 'none', 'nope']), randomBytes(32).toString('hex')), id)],
      ['identical? with a wrong sha256', event(WIRE.events.identical, WIRE.identical(pick([ctx.id ?? 'none', 'nope']), randomBytes(32).toString('hex')), id)],
      ['put with bad names, wrong sha256s or wrong types', event(WIRE.events.put, WIRE.put(Array.from({ length: 1 + int(8) }, () => ({
        name: pick(['../escape.bin', '/etc/passwd', 'a\u0000b', '.relay-partial/x', '', `hostile/put-${int(1e6)}.bin`, randomValue()]),
        sha256: pick([randomBytes(32).toString('hex'), 'zz', randomValue()]),
        data: pick([randomBytes(int(4096)), randomValue()]),
      }))), id)],
    ] as Array<[string, Buffer]>);
    case 6: return ['unknown event', event(randomBytes(1 + int(12)).toString('base64url'), randomValue(), id)];
    case 7: return ['ack for nothing', packr.pack({ type: PT.ACK, nsp: '/', data: [randomValue()], id: int(1e6) })];
    case 8: return ['heartbeat with wrong types', event(WIRE.events.heartbeat, { seq: randomValue(), sentAt: randomValue() }, id)];
    default: return ['abort of an unknown transfer', event(WIRE.events.abort, WIRE.abort(randomBytes(8).toString('hex')))];
  }
}

/** A nested array `depth` levels deep, as raw msgpack (fixarray of one element, repeated). */
function deep(depth: number): Buffer {
  return Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([0xc0])]);
}

/** msgpack headers that announce far more than follows. */
const hugeHeaders = [
  [0xc6, 0x7f, 0xff, 0xff, 0xff], // bin 32: 2 GiB
  [0xdb, 0xff, 0xff, 0xff, 0xf0], // str 32: 4 GiB
  [0xdd, 0xff, 0xff, 0xff, 0xff], // array 32: 4G elements
  [0xdf, 0x7f, 0xff, 0xff, 0xff], // map 32
  [0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01], // ext 32
];

/** The start of an EVENT packet for `name` whose frame is the raw bytes that follow. */
function eventPrefix(name: string, id: number): Buffer {
  return Buffer.concat([Buffer.from([0x84]), packr.pack('type'), packr.pack(PT.EVENT), packr.pack('nsp'), packr.pack('/'),
    packr.pack('id'), packr.pack(id), packr.pack('data'), Buffer.from([0x92]), packr.pack(name)]);
}

/** A message broken at the packet level (the connection should be dropped). */
function brokenPacket(ctx: HostileContext): [string, Buffer | string] {
  const id = ctx.nextId();
  switch (int(9)) {
    case 0: {
      const whole = event(WIRE.events.chunk, WIRE.chunk(ctx.id ?? 'none', 0, randomBytes(1 + int(4096))), id);
      return ['truncated msgpack', whole.subarray(0, 1 + int(whole.length - 1))];
    }
    case 1: return ['random bytes', randomBytes(1 + int(512))];
    case 2: return ['deep nesting', Buffer.concat([eventPrefix(pick(knownEvents), id), deep(pick([100, 10_000, 200_000]))])];
    case 3: return ['huge length', Buffer.concat([eventPrefix(pick(knownEvents), id), Buffer.from(pick(hugeHeaders)), randomBytes(int(64))])];
    case 4: return ['wrong packet shape', packr.pack(pick([{ type: 9, nsp: '/' }, { type: '2', nsp: '/', data: ['offer'] }, { type: PT.EVENT, nsp: 7, data: ['offer', {}] },
      { type: PT.EVENT, nsp: '/', data: 'offer' }, { type: PT.EVENT, nsp: '/', data: [] }, { type: PT.EVENT, nsp: '/', data: [42, {}] }, [1, 2, 3], 'string', 12]))];
    case 5: return ['reserved event name', event(pick(['error', 'disconnect', 'connect', 'newListener', 'disconnecting']), randomValue(), id)];
    case 6: return ['request without an ack id', event(pick(knownEvents), randomValue())];
    case 7: return ['engine.io text garbage', pick(['4', '40', '42["offer",{}]', '9', '1', '5', '6', '0{}', randomBytes(16).toString('hex')])];
    default: return ['connect to another namespace', packr.pack({ type: PT.CONNECT, nsp: '/admin', data: { token: 'x' } })];
  }
}

/** One hostile message: mostly bad frames, sometimes (probability `broken`) a broken packet. */
export function hostileMessage(ctx: HostileContext, broken: boolean): [string, Buffer | string] {
  return broken ? brokenPacket(ctx) : badFrame(ctx);
}
