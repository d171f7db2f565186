import { expect } from 'chai';
import {
  isAbortFrame, isAckCallback, isChunkFrame, isCommitFrame, isHeartbeatFrame, isOfferFrame, MAX_CHUNK_SIZE,
} from '@relayer/common';

const sha = 'a'.repeat(64);
const bytes = new Uint8Array([1, 2, 3]);

describe('frame validation: a peer\'s frame is untrusted until a predicate accepts it', () => {
  describe('isOfferFrame', () => {
    it('accepts a name, a size and an mtime', () => {
      expect(isOfferFrame({ name: 'a/b.bin', size: 0, mtimeMs: 1700000000000.5 })).to.equal(true);
      expect(isOfferFrame({ name: 'x', size: Number.MAX_SAFE_INTEGER, mtimeMs: 0 })).to.equal(true);
      expect(isOfferFrame({ name: 'sparse.img', size: 1000, mtimeMs: 1, allocated: 0 }), 'a sparse source').to.equal(true);
    });
    const bad: Array<[string, unknown]> = [
      ['null', null], ['an array', ['a', 1, 2]], ['a Buffer', Buffer.from('{}')],
      ['a missing name', { size: 1, mtimeMs: 1 }], ['a numeric name', { name: 5, size: 1, mtimeMs: 1 }],
      ['a name over 4096 characters', { name: 'n'.repeat(4097), size: 1, mtimeMs: 1 }],
      ['a negative size', { name: 'a', size: -1, mtimeMs: 1 }], ['a fractional size', { name: 'a', size: 1.5, mtimeMs: 1 }],
      ['a size given as a string', { name: 'a', size: '1', mtimeMs: 1 }], ['an unsafe size', { name: 'a', size: 2 ** 60, mtimeMs: 1 }],
      ['a missing mtime', { name: 'a', size: 1 }], ['a NaN mtime', { name: 'a', size: 1, mtimeMs: NaN }],
      ['an infinite mtime', { name: 'a', size: 1, mtimeMs: Infinity }],
      ['more allocated than its size', { name: 'a', size: 10, mtimeMs: 1, allocated: 11 }],
      ['a negative allocation', { name: 'a', size: 10, mtimeMs: 1, allocated: -1 }],
      ['an allocation given as a string', { name: 'a', size: 10, mtimeMs: 1, allocated: '5' }],
    ];
    for (const [what, v] of bad) it(`refuses ${what}`, () => expect(isOfferFrame(v)).to.equal(false));
  });

  describe('isChunkFrame', () => {
    const good = { lease: 't', offset: 0, crc: 0, data: bytes };
    it('accepts a lease, an offset, a crc32 and some bytes (a Buffer too)', () => {
      expect(isChunkFrame(good)).to.equal(true);
      expect(isChunkFrame({ ...good, crc: 0xffffffff, offset: 10, data: Buffer.alloc(MAX_CHUNK_SIZE) })).to.equal(true);
    });
    const bad: Array<[string, unknown]> = [
      ['null', null], ['an array', [good]],
      ['an empty lease', { ...good, lease: '' }], ['a lease over 128 characters', { ...good, lease: 't'.repeat(129) }],
      ['a numeric lease', { ...good, lease: 1 }],
      ['a negative offset', { ...good, offset: -1 }], ['a fractional offset', { ...good, offset: 0.5 }],
      ['a negative crc', { ...good, crc: -1 }], ['a crc over 32 bits', { ...good, crc: 2 ** 32 }],
      ['a fractional crc', { ...good, crc: 1.5 }], ['a string crc', { ...good, crc: '0' }],
      ['data as a string', { ...good, data: 'abc' }], ['data as an array of numbers', { ...good, data: [1, 2, 3] }],
      ['empty data', { ...good, data: new Uint8Array(0) }], ['missing data', { lease: 't', offset: 0, crc: 0 }],
      ['data over the largest chunk', { ...good, data: new Uint8Array(MAX_CHUNK_SIZE + 1) }],
      ['other typed arrays as data', { ...good, data: new Uint16Array(4) }],
    ];
    for (const [what, v] of bad) it(`refuses ${what}`, () => expect(isChunkFrame(v)).to.equal(false));
  });

  describe('isCommitFrame', () => {
    it('accepts a lease and a lower-case hex sha256', () => {
      expect(isCommitFrame({ lease: 't', sha256: sha })).to.equal(true);
    });
    const bad: Array<[string, unknown]> = [
      ['a short digest', { lease: 't', sha256: 'a'.repeat(63) }], ['a long digest', { lease: 't', sha256: 'a'.repeat(65) }],
      ['an upper-case digest', { lease: 't', sha256: 'A'.repeat(64) }], ['a non-hex digest', { lease: 't', sha256: 'g'.repeat(64) }],
      ['a digest as bytes', { lease: 't', sha256: Buffer.alloc(32) }], ['a missing lease', { sha256: sha }],
      ['null', null],
    ];
    for (const [what, v] of bad) it(`refuses ${what}`, () => expect(isCommitFrame(v)).to.equal(false));
  });

  describe('isAbortFrame', () => {
    it('accepts a lease and refuses anything without one', () => {
      expect(isAbortFrame({ lease: 't' })).to.equal(true);
      for (const v of [null, {}, { lease: '' }, { lease: 3 }, 't', ['t']]) expect(isAbortFrame(v), JSON.stringify(v)).to.equal(false);
    });
  });

  describe('isHeartbeatFrame', () => {
    it('accepts a sequence number and a send time and refuses other shapes', () => {
      expect(isHeartbeatFrame({ seq: 0, sentAt: Date.now() })).to.equal(true);
      for (const v of [null, {}, { seq: -1, sentAt: 1 }, { seq: 1.5, sentAt: 1 }, { seq: 1 }, { seq: 1, sentAt: NaN }, { seq: '1', sentAt: 1 }]) {
        expect(isHeartbeatFrame(v), JSON.stringify(v)).to.equal(false);
      }
    });
  });

  describe('isAckCallback', () => {
    it('accepts only functions', () => {
      expect(isAckCallback(() => undefined)).to.equal(true);
      for (const v of [undefined, null, {}, 'fn', 1]) expect(isAckCallback(v)).to.equal(false);
    });
  });
});
