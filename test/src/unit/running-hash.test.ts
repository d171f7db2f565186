/**
 * The running sha256 one or more transfers of a file share: every byte goes in once and in order, however
 * feeds (chunks read for sending) and reads of its own (bytes that are not sent) interleave across awaits.
 */
import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { FINISHED_KEPT, RunningHash, SharedHashes, type SourceHash } from '@relayer/agent-sender';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const CHUNK = 1000;

/** Reads from `data`, each read held until `gate` resolves (so the test decides what lands meanwhile). */
function readerOf(data: Buffer, gate: () => Promise<void> = async () => {}) {
  let reads = 0;
  const read = async (position: number, buf: Buffer, length: number): Promise<void> => {
    reads++;
    data.copy(buf, 0, position, position + length);
    await gate();
  };
  return { read, reads: () => reads };
}

describe('RunningHash: one sha256 per version, each byte hashed once', () => {
  const data = randomBytes(10 * CHUNK + 17);

  it('takes chunks fed in order and ignores chunks out of order or already in', () => {
    const h = new RunningHash();
    h.feed(CHUNK, data.subarray(CHUNK, 2 * CHUNK)); // ahead of the hash: ignored
    h.feed(0, data.subarray(0, CHUNK));
    h.feed(0, data.subarray(0, CHUNK)); // again: ignored
    h.feed(CHUNK, data.subarray(CHUNK, 2 * CHUNK));
    expect(h.hashedTo).to.equal(2 * CHUNK);
    expect(h.digest()).to.equal(sha256(data.subarray(0, 2 * CHUNK)));
  });

  it('reads on to the end by itself, and a digest does not stop the hash', async () => {
    const h = new RunningHash();
    h.feed(0, data.subarray(0, CHUNK));
    expect(h.digest()).to.equal(sha256(data.subarray(0, CHUNK)));
    const r = readerOf(data);
    await h.extendTo(data.length, r.read, CHUNK);
    expect(h.digest()).to.equal(sha256(data));
    expect(r.reads()).to.equal(Math.ceil((data.length - CHUNK) / CHUNK));
  });

  it('does not hash bytes twice when a feed lands while its own read is pending', async () => {
    const h = new RunningHash();
    let release!: () => void;
    const gate = (): Promise<void> => new Promise((resolve) => (release = resolve));
    const r = readerOf(data, gate);
    const extending = h.extendTo(3 * CHUNK, r.read, CHUNK);
    // Its first read (bytes [0, CHUNK)) is pending: another transfer's chunk of the same bytes comes in.
    h.feed(0, data.subarray(0, CHUNK));
    release();
    // From here each read is let through as soon as it is made.
    for (let i = 0; i < 10 && h.hashedTo < 3 * CHUNK; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      release();
    }
    await extending;
    expect(h.hashedTo).to.equal(3 * CHUNK);
    expect(h.digest()).to.equal(sha256(data.subarray(0, 3 * CHUNK)));
  });

  it('gives the right digest when two readers extend the same hash at once', async () => {
    const h = new RunningHash();
    const a = readerOf(data, () => new Promise((resolve) => setImmediate(resolve)));
    // A slower reader: each read yields twice, so the two interleave differently at every step.
    const b = readerOf(data, () => new Promise((resolve) => setImmediate(() => setImmediate(resolve))));
    await Promise.all([h.extendTo(data.length, a.read, CHUNK), h.extendTo(data.length, b.read, 333)]);
    expect(h.hashedTo).to.equal(data.length);
    expect(h.digest()).to.equal(sha256(data));
  });

  it('answers the digest at a point behind it: a remembered chunk end, else by reading that prefix again', async () => {
    const h = new RunningHash();
    for (let at = 0; at < 5 * CHUNK; at += CHUNK) h.feed(at, data.subarray(at, at + CHUNK));
    const r = readerOf(data);
    expect(await h.digestAt(2 * CHUNK, r.read, CHUNK)).to.equal(sha256(data.subarray(0, 2 * CHUNK)));
    expect(r.reads()).to.equal(0);
    expect(await h.digestAt(2 * CHUNK + 5, r.read, CHUNK)).to.equal(sha256(data.subarray(0, 2 * CHUNK + 5)));
    expect(r.reads()).to.be.greaterThan(0);
    expect(h.hashedTo).to.equal(5 * CHUNK);
  });

  it('reads a prefix far behind from its nearest kept state, not from byte 0', async () => {
    const h = new RunningHash(3 * CHUNK);
    for (let at = 0; at < 10 * CHUNK; at += CHUNK) h.feed(at, data.subarray(at, at + CHUNK));
    let readBytes = 0;
    const read = async (position: number, buf: Buffer, length: number): Promise<void> => {
      readBytes += length;
      data.copy(buf, 0, position, position + length);
    };
    // Off the chunk grid: no remembered digest. Kept states are at 3, 6 and 9 chunks.
    const offset = 7 * CHUNK + 500;
    expect(await h.digestAt(offset, read, CHUNK)).to.equal(sha256(data.subarray(0, offset)));
    expect(readBytes).to.equal(CHUNK + 500);
    readBytes = 0;
    expect(await h.digestAt(123, read, CHUNK)).to.equal(sha256(data.subarray(0, 123)));
    expect(readBytes).to.equal(123);
    expect(h.digest()).to.equal(sha256(data.subarray(0, 10 * CHUNK)));
  });

  it('answers the digest at a point it was fed past while it read on to that point', async () => {
    const h = new RunningHash();
    let release!: () => void;
    const r = readerOf(data, () => new Promise((resolve) => (release = resolve)));
    const asked = h.digestAt(CHUNK + 10, r.read, CHUNK);
    // While its read of [0, CHUNK) is pending, other transfers feed three chunks.
    for (let at = 0; at < 3 * CHUNK; at += CHUNK) h.feed(at, data.subarray(at, at + CHUNK));
    release();
    for (let i = 0; i < 10; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      release();
    }
    expect(await asked).to.equal(sha256(data.subarray(0, CHUNK + 10)));
    expect(h.digest()).to.equal(sha256(data.subarray(0, 3 * CHUNK)));
  });
});

describe('SharedHashes: transfers of the same version of a file share its running hash', () => {
  const v1 = { size: 100, mtimeMs: 1, ctimeMs: 1, ino: 7, dev: 1 };

  it('hands the same hash to every open of one version while any holds it, and a new one afterwards', () => {
    const hashes = new SharedHashes();
    const a = hashes.acquire('/f', v1);
    const b = hashes.acquire('/f', { ...v1 });
    expect(b).to.equal(a);
    a.feed(0, Buffer.alloc(40));
    hashes.release('/f', a);
    expect(hashes.size).to.equal(1);
    hashes.release('/f', b);
    expect(hashes.size).to.equal(0);
    expect(hashes.hashedBytes).to.equal(40);
    expect(hashes.acquire('/f', v1)).to.not.equal(a);
  });

  it('never shares between versions: another mtime, ctime, size or inode gets a hash of its own', () => {
    const hashes = new SharedHashes();
    const held = hashes.acquire('/f', v1);
    const others = [{ mtimeMs: 2 }, { ctimeMs: 2 }, { size: 101 }, { ino: 8 }, { dev: 2 }].map((d) => hashes.acquire('/f', { ...v1, ...d }));
    for (const o of others) expect(o).to.not.equal(held);
    expect(new Set(others).size).to.equal(others.length);
    others.forEach((o, i) => {
      o.feed(0, Buffer.alloc(i + 1));
      hashes.release('/f', o);
    });
    // The held version keeps its entry through the others' releases.
    expect(hashes.acquire('/f', v1)).to.equal(held);
    expect(hashes.hashedBytes).to.equal(1 + 2 + 3 + 4 + 5);
    expect(hashes.acquire('/g', v1)).to.not.equal(held);
  });

  it('keeps a complete hash after its last transfer, so a target running behind does not hash the file again', () => {
    const hashes = new SharedHashes();
    const first = hashes.acquire('/f', v1);
    first.feed(0, Buffer.alloc(100));
    hashes.release('/f', first);
    expect(hashes.size, 'held').to.equal(0);
    const later = hashes.acquire('/f', { ...v1 });
    expect(later).to.equal(first);
    expect(later.hashedTo).to.equal(100);
    hashes.release('/f', later);
    expect(hashes.hashedBytes, 'each byte counted once').to.equal(100);
    // Another version of the file never gets the kept hash, and drops it.
    const changed = hashes.acquire('/f', { ...v1, mtimeMs: 9 });
    expect(changed).to.not.equal(first);
    expect(changed.hashedTo).to.equal(0);
    hashes.release('/f', changed);
    expect(hashes.acquire('/f', v1)).to.not.equal(first);
  });

  it('keeps no incomplete hash (an abandoned transfer), and at most FINISHED_KEPT complete ones', () => {
    const hashes = new SharedHashes();
    const partial = hashes.acquire('/p', v1);
    partial.feed(0, Buffer.alloc(60));
    hashes.release('/p', partial);
    expect(hashes.acquire('/p', v1)).to.not.equal(partial);
    const done: SourceHash[] = [];
    for (let i = 0; i <= FINISHED_KEPT; i++) {
      const h = hashes.acquire(`/k${i}`, v1);
      h.feed(0, Buffer.alloc(100));
      hashes.release(`/k${i}`, h);
      done.push(h);
    }
    expect(hashes.acquire('/k0', v1), 'the oldest was let go').to.not.equal(done[0]);
    expect(hashes.acquire(`/k${FINISHED_KEPT}`, v1), 'the newest is kept').to.equal(done[FINISHED_KEPT]);
  });
});
