import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Packr } from 'msgpackr';
import { allocFramable, Decoder, Encoder, FRAME_HEADROOM, isPacketValid, msgpackParser, PacketType, type Packet } from '@relayer/common';

const packr = new Packr({ useRecords: false });

/** Feeds bytes to a fresh Decoder and returns what it emitted. */
function decode(input: unknown): Packet[] {
  const decoder = new Decoder();
  const out: Packet[] = [];
  decoder.on('decoded', (p: Packet) => out.push(p));
  decoder.add(input);
  return out;
}

describe('msgpack Socket.IO parser: one binary message per packet, anything else refused', () => {
  it('exposes the parser shape Socket.IO expects (protocol 5, Encoder, Decoder)', () => {
    expect(msgpackParser.protocol).to.equal(5);
    expect(msgpackParser.Encoder).to.equal(Encoder);
    expect(msgpackParser.Decoder).to.equal(Decoder);
  });

  it('encodes an EVENT carrying a Buffer as exactly one binary message and decodes it back intact', () => {
    const data = randomBytes(256 * 1024);
    const packet: Packet = { type: PacketType.EVENT, nsp: '/', id: 7, data: ['chunk', { transfer: 't-1', offset: 1048576, crc: 4294967295, data }] };
    const encoded = new Encoder().encode(packet);
    expect(encoded).to.have.length(1);
    expect(Buffer.isBuffer(encoded[0])).to.equal(true);
    // The chunk travels inline, not as an attachment: the message is barely larger than the bytes.
    expect(encoded[0]!.length).to.be.within(data.length, data.length + 128);

    const [decoded, ...rest] = decode(encoded[0]);
    expect(rest).to.be.empty;
    expect(decoded!.type).to.equal(PacketType.EVENT);
    expect(decoded!.nsp).to.equal('/');
    expect(decoded!.id).to.equal(7);
    const [event, frame] = decoded!.data as [string, { transfer: string; offset: number; crc: number; data: Uint8Array }];
    expect(event).to.equal('chunk');
    expect(frame.transfer).to.equal('t-1');
    expect(frame.offset).to.equal(1048576);
    expect(frame.crc).to.equal(4294967295);
    expect(frame.data).to.be.instanceOf(Uint8Array);
    expect(Buffer.from(frame.data).equals(data)).to.equal(true);
  });

  it('writes the envelope around framable chunk bytes in place: the message shares their memory and decodes the same', () => {
    for (const length of [0, 1, 200, 70_000, 1024 * 1024]) {
      const data = allocFramable(length);
      randomBytes(length).copy(data);
      const packet = { type: PacketType.EVENT, nsp: '/', data: ['chunk', { lease: 'a-lease', offset: 3 * 1048576, crc: 123456, data }], options: { compress: true }, id: 42 } as Packet;
      const [message, ...more] = new Encoder().encode(packet);
      expect(more).to.be.empty;
      expect(message!.buffer, `length ${length}`).to.equal(data.buffer);
      const [decoded] = decode(message);
      // Exactly what a plain msgpack encoding of the packet decodes to.
      expect(decoded).to.deep.equal(packr.unpack(packr.pack(packet)));
      expect(Buffer.from((decoded!.data as [string, { data: Uint8Array }])[1].data).equals(data)).to.equal(true);
    }
  });

  it('packs a copy as before when the bytes are not framable or their envelope does not fit the room around them', () => {
    const plain = randomBytes(5000);
    const framable = allocFramable(5000);
    plain.copy(framable);
    for (const [data, lease] of [[plain, 'l'], [framable, 'x'.repeat(FRAME_HEADROOM)]] as const) {
      const packet: Packet = { type: PacketType.EVENT, nsp: '/', id: 1, data: ['chunk', { lease, offset: 0, crc: 1, data }] };
      const [message] = new Encoder().encode(packet);
      expect(message!.buffer).to.not.equal(data.buffer);
      expect(decode(message)).to.deep.equal([packr.unpack(packr.pack(packet))]);
    }
  });

  it('round-trips CONNECT, ACK, DISCONNECT and CONNECT_ERROR packets', () => {
    const packets: Packet[] = [
      { type: PacketType.CONNECT, nsp: '/', data: { token: 'x' } },
      { type: PacketType.CONNECT, nsp: '/' },
      { type: PacketType.ACK, nsp: '/', id: 3, data: [{ ok: true, offset: 10 }] },
      { type: PacketType.DISCONNECT, nsp: '/' },
      { type: PacketType.CONNECT_ERROR, nsp: '/', data: { message: 'no', data: { code: 'AUTH' } } },
    ];
    for (const p of packets) {
      expect(decode(new Encoder().encode(p)[0])).to.deep.equal([p]);
    }
  });

  it('accepts an ArrayBuffer as well as a Buffer', () => {
    const buf = new Encoder().encode({ type: PacketType.EVENT, nsp: '/', data: ['heartbeat', { seq: 1, sentAt: 2 }] })[0]!;
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
    expect(decode(ab)[0]!.data).to.deep.equal(['heartbeat', { seq: 1, sentAt: 2 }]);
  });

  it('throws on a text message (the engine.io string form of a packet)', () => {
    expect(() => decode('2["offer",{}]')).to.throw(/expected a binary message/);
    expect(() => decode('40')).to.throw(/expected a binary message/);
  });

  it('throws on something that is not bytes at all', () => {
    for (const v of [undefined, null, 42, { type: 2 }, [1, 2]]) expect(() => decode(v)).to.throw(/expected a binary message/);
  });

  it('throws on bytes that are not msgpack', () => {
    expect(() => decode(Buffer.alloc(0))).to.throw(/not msgpack/);
    expect(() => decode(Buffer.from([0x92, 0x01]))).to.throw(/not msgpack/); // an array of 2 with 1 element
    expect(() => decode(Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff]))).to.throw(/not msgpack/); // a 4 GiB string, 0 bytes given
    expect(() => decode(Buffer.from([0xff, 0x00, 0x13]))).to.throw(/not msgpack/); // trailing bytes after a value
    expect(() => decode(Buffer.from([0xc1]))).to.throw(/invalid packet/); // the never-used byte
  });

  it('throws on msgpack that is not a packet (wrong shape) and emits nothing', () => {
    for (const value of [42, 'hello', [2, '/', ['x']], null, { type: PacketType.EVENT, nsp: '/', data: [] }]) {
      expect(() => decode(packr.pack(value)), JSON.stringify(value)).to.throw(/wrong shape/);
    }
  });

  it('refuses EVENT packets that name a reserved event (a peer must not fire "error" or "disconnect" handlers)', () => {
    for (const name of ['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener', 'error']) {
      expect(isPacketValid({ type: PacketType.EVENT, nsp: '/', data: [name, null] }), name).to.equal(false);
      expect(() => decode(packr.pack({ type: PacketType.EVENT, nsp: '/', data: [name, null] })), name).to.throw(/wrong shape/);
    }
  });

  describe('isPacketValid', () => {
    const valid: Array<[string, unknown]> = [
      ['a CONNECT without data', { type: 0, nsp: '/' }],
      ['a CONNECT with an auth object', { type: 0, nsp: '/', data: { token: 't' } }],
      ['a DISCONNECT', { type: 1, nsp: '/' }],
      ['an EVENT with arguments', { type: 2, nsp: '/', data: ['offer', { name: 'a' }] }],
      ['an EVENT with an ack id', { type: 2, nsp: '/', data: ['offer'], id: 0 }],
      ['an ACK', { type: 3, nsp: '/', data: [], id: 12 }],
      ['a CONNECT_ERROR', { type: 4, nsp: '/', data: { message: 'x' } }],
    ];
    for (const [what, p] of valid) it(`accepts ${what}`, () => expect(isPacketValid(p)).to.equal(true));

    const invalid: Array<[string, unknown]> = [
      ['null', null],
      ['a number', 2],
      ['an array', [2, '/']],
      ['an unknown type', { type: 5, nsp: '/' }],
      ['a type given as a string', { type: '2', nsp: '/', data: ['x'] }],
      ['a missing nsp', { type: 2, data: ['x'] }],
      ['a non-string nsp', { type: 2, nsp: 1, data: ['x'] }],
      ['an nsp over 256 characters', { type: 2, nsp: `/${'n'.repeat(256)}`, data: ['x'] }],
      ['a negative id', { type: 2, nsp: '/', data: ['x'], id: -1 }],
      ['a fractional id', { type: 2, nsp: '/', data: ['x'], id: 1.5 }],
      ['a string id', { type: 2, nsp: '/', data: ['x'], id: '1' }],
      ['a CONNECT with array data', { type: 0, nsp: '/', data: ['x'] }],
      ['a CONNECT with null data', { type: 0, nsp: '/', data: null }],
      ['a DISCONNECT with data', { type: 1, nsp: '/', data: {} }],
      ['an EVENT without data', { type: 2, nsp: '/' }],
      ['an EVENT with an empty array', { type: 2, nsp: '/', data: [] }],
      ['an EVENT whose name is not a string', { type: 2, nsp: '/', data: [1, 'x'] }],
      ['an EVENT whose data is an object', { type: 2, nsp: '/', data: { 0: 'offer' } }],
      ['an ACK without an id', { type: 3, nsp: '/', data: [] }],
      ['an ACK whose data is not an array', { type: 3, nsp: '/', data: {}, id: 1 }],
      ['a CONNECT_ERROR without data', { type: 4, nsp: '/' }],
    ];
    for (const [what, p] of invalid) it(`refuses ${what}`, () => expect(isPacketValid(p)).to.equal(false));
  });
});
