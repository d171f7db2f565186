/**
 * The transfer registry on its own: real files in a temp folder, owners as plain objects with an abort
 * signal (what a Session is to the registry).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { FileHasher, OfferCommitLock, PartialStore, TransferRegistry, type OpenedPartial, type Owner, type RegistryLimits } from '@relayer/agent-receiver';
import { ErrorCode, type RelayError } from '@relayer/common';
import { captureLogger, chunkOf, closeAll, eventually, expectRejectsCode, partialEntries, testLogger, tmpDir, track } from '../support/util.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function owner(id: string): Owner & { close: () => void } {
  const controller = new AbortController();
  return { id, log: testLogger(id), signal: controller.signal, close: () => controller.abort() };
}

const LIMITS: RegistryLimits = { maxFileSize: 1e12, minFree: 0, maxTransfersPerConnection: 4, flushEvery: 64 * 1024, transferIdleMs: 60_000, lockTimeoutMs: 5000 };

/**
 * A disk whose partials answer one flush with EIO when the test says so (after the chunk that started it
 * was acked), and whose writes the test can hold: real files, with these two calls as the faults.
 */
class FlakyDisk {
  private failing: (() => void) | undefined;
  private writesHeld: Promise<void> = Promise.resolve();

  /** The flush in progress fails; later flushes succeed. */
  failFlush(): void {
    expect(this.failing, 'a flush started').to.be.a('function');
    const fail = this.failing!;
    this.failing = undefined;
    fail();
  }

  /** Writes wait until the returned function is called. */
  holdWrites(): () => void {
    let release!: () => void;
    this.writesHeld = new Promise((resolve) => (release = resolve));
    return release;
  }

  store(dir: string, hasher: FileHasher): PartialStore {
    const disk = this;
    let flushes = 0;
    return new (class extends PartialStore {
      override async open(...args: Parameters<PartialStore['open']>): Promise<OpenedPartial> {
        const p = await super.open(...args);
        const datasync = p.fh.datasync.bind(p.fh);
        p.fh.datasync = () => (flushes++ > 0 ? datasync() : new Promise((_, reject) => {
          disk.failing = () => reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
        }));
        const write = p.fh.write.bind(p.fh) as (...a: unknown[]) => Promise<unknown>;
        (p.fh as unknown as { write: (...a: unknown[]) => Promise<unknown> }).write = async (...a: unknown[]) => {
          await disk.writesHeld;
          return write(...a);
        };
        return p;
      }
    })(dir, hasher);
  }
}

/** A new offer of `name` starts from 0, and the whole file sent then is published intact. */
async function expectSentAfresh(reg: TransferRegistry, a: Owner, dir: string, name: string, bytes: Buffer): Promise<void> {
  const o = await reg.offer(a, { name, size: bytes.length, mtimeMs: 1 });
  expect(o.offset).to.equal(0);
  await reg.chunk(a, chunkOf(o.lease, 0, bytes));
  await reg.commit(a, { lease: o.lease, sha256: sha(bytes) });
  expect(sha(await readFile(path.join(dir, name)))).to.equal(sha(bytes));
}

async function registry(limits: Partial<RegistryLimits> = {}, opts: { free?: number | (() => number); log?: ReturnType<typeof testLogger>; disk?: FlakyDisk } = {}): Promise<{ reg: TransferRegistry; dir: string }> {
  const dir = await tmpDir('relay-registry-');
  const hasher = new FileHasher();
  track(() => hasher.close());
  const store = opts.disk ? opts.disk.store(dir, hasher) : new PartialStore(dir, hasher);
  await store.init();
  const reg = new TransferRegistry({
    root: dir, store, limits: { ...LIMITS, ...limits }, log: opts.log ?? testLogger('registry'), freeBytes: async () => (typeof opts.free === 'function' ? opts.free() : opts.free ?? 1e12),
  });
  // Closes the partials a test leaves open (before the hasher closes: closeAll runs the last tracked first).
  track(() => reg.close());
  return { reg, dir };
}

/** A 200,000-byte transfer offered to a registry on a FlakyDisk that flushes every 64 KiB. */
async function flushingTransfer(): Promise<{ disk: FlakyDisk; reg: TransferRegistry; dir: string; a: Owner; bytes: Buffer; o: { lease: string } }> {
  const disk = new FlakyDisk();
  const { reg, dir } = await registry({ flushEvery: 64 * 1024 }, { disk });
  const a = owner('a');
  const bytes = randomBytes(200_000);
  const o = await reg.offer(a, { name: 'f.bin', size: bytes.length, mtimeMs: 1 });
  return { disk, reg, dir, a, bytes, o };
}

describe('TransferRegistry: one transfer per name, held by a live owner', () => {
  afterEach(closeAll);

  it('drops a partial whose background flush failed (its bytes cannot be trusted for a resume); the next offer starts from 0', async () => {
    const { disk, reg, dir, a, bytes, o } = await flushingTransfer();
    // The chunk that crosses 64 KiB starts the flush; it fails once no write follows (the last chunk sent
    // before the connection went away), so only the flush itself can drop the partial.
    expect(await reg.chunk(a, chunkOf(o.lease, 0, bytes.subarray(0, 70_000)))).to.deep.equal({ offset: 70_000, taken: true });
    disk.failFlush();
    await eventually(async () => (await partialEntries(dir)).length === 0, 'the partial is removed');
    await expectRejectsCode(reg.chunk(a, chunkOf(o.lease, 70_000, bytes.subarray(70_000))), ErrorCode.UNKNOWN_TRANSFER);
    expect(reg.active).to.equal(0);
    expect(reg.reserved).to.equal(0);
    await expectSentAfresh(reg, a, dir, 'f.bin', bytes);
  });

  it('an offer that comes while a dropped partial is still being removed waits for it and starts from 0', async () => {
    const { disk, reg, dir, a, bytes, o } = await flushingTransfer();
    await reg.chunk(a, chunkOf(o.lease, 0, bytes.subarray(0, 70_000)));
    // The next chunk's write hangs on the disk; the flush fails meanwhile; the sender offers again at once.
    const releaseWrites = disk.holdWrites();
    const stuck = reg.chunk(a, chunkOf(o.lease, 70_000, bytes.subarray(70_000, 140_000))).then(() => 'taken', (e: RelayError) => e.code);
    disk.failFlush();
    const offering = expectSentAfresh(reg, a, dir, 'f.bin', bytes);
    releaseWrites();
    expect(['taken', ErrorCode.IO, ErrorCode.UNKNOWN_TRANSFER]).to.include(await stuck);
    await offering;
  });

  it('offer → chunks → commit publishes the file; a gap or a duplicate is acked as not taken', async () => {
    const { reg, dir } = await registry();
    const a = owner('a');
    const bytes = randomBytes(30_000);
    const o = await reg.offer(a, { name: 'f.bin', size: bytes.length, mtimeMs: 1 });
    expect(o).to.include({ offset: 0, tookOver: false });
    expect(await reg.chunk(a, chunkOf(o.lease, 0, bytes.subarray(0, 10_000)))).to.deep.equal({ offset: 10_000, taken: true });
    expect(await reg.chunk(a, chunkOf(o.lease, 20_000, bytes.subarray(20_000)))).to.deep.equal({ offset: 10_000, taken: false });
    expect(await reg.chunk(a, chunkOf(o.lease, 0, bytes.subarray(0, 10_000)))).to.deep.equal({ offset: 10_000, taken: false });
    expect(await reg.chunk(a, chunkOf(o.lease, 10_000, bytes.subarray(10_000)))).to.deep.equal({ offset: 30_000, taken: true });
    const done = await reg.commit(a, { lease: o.lease, sha256: sha(bytes) });
    expect(done).to.include({ name: 'f.bin', size: bytes.length, unchanged: false });
    expect(sha(await readFile(path.join(dir, 'f.bin')))).to.equal(sha(bytes));
    expect(reg.active).to.equal(0);
    expect(reg.reserved).to.equal(0);
  });

  it('a refused transfer (bad chunk range, wrong sha256) is no longer held or reserved, and its partial is gone', async () => {
    const { reg, dir } = await registry();
    const a = owner('a');
    const o1 = await reg.offer(a, { name: 'o.bin', size: 10, mtimeMs: 1 });
    await expectRejectsCode(reg.chunk(a, chunkOf(o1.lease, 5, Buffer.alloc(6))), ErrorCode.OFFSET);
    const o2 = await reg.offer(a, { name: 'c.bin', size: 10, mtimeMs: 1 });
    await reg.chunk(a, chunkOf(o2.lease, 0, Buffer.alloc(10)));
    await expectRejectsCode(reg.commit(a, { lease: o2.lease, sha256: sha(Buffer.from('x')) }), ErrorCode.CHECKSUM);
    expect(reg.active).to.equal(0);
    expect(reg.reserved).to.equal(0);
    expect(await partialEntries(dir)).to.deep.equal([]);
  });

  it('keeps a running total of reserved space: an offer that does not fit is DISK_FULL', async () => {
    const { reg } = await registry({}, { free: 1000 });
    const a = owner('a');
    const first = await reg.offer(a, { name: 'a.bin', size: 600, mtimeMs: 1 });
    expect(reg.reserved).to.equal(600);
    await expectRejectsCode(reg.offer(a, { name: 'b.bin', size: 500, mtimeMs: 1 }), ErrorCode.DISK_FULL);
    await reg.chunk(a, chunkOf(first.lease, 0, Buffer.alloc(100)));
    expect(reg.reserved).to.equal(500);
    await reg.release(a);
    expect(reg.reserved).to.equal(0);
  });

  it('chunks in flight together use up the reservation by what each stored, not by what all stored meanwhile', async () => {
    const { reg } = await registry();
    const a = owner('a');
    const bytes = randomBytes(300_000);
    const o = await reg.offer(a, { name: 'p.bin', size: bytes.length, mtimeMs: 1 });
    await Promise.all([0, 100_000].map((at) => reg.chunk(a, chunkOf(o.lease, at, bytes.subarray(at, at + 100_000)))));
    expect(reg.reserved).to.equal(100_000);
    await reg.chunk(a, chunkOf(o.lease, 200_000, bytes.subarray(200_000)));
    expect(reg.reserved).to.equal(0);
  });

  it('DISK_FULL says what is free and what transfers in flight will still write, never a negative figure', async () => {
    let free = 1000;
    const { reg } = await registry({ minFree: 0 }, { free: () => free });
    const a = owner('a');
    await reg.offer(a, { name: 'a.bin', size: 600, mtimeMs: 1 });
    free = 300; // another writer filled the disk meanwhile
    const err = await expectRejectsCode(reg.offer(a, { name: 'b.bin', size: 500, mtimeMs: 1 }), ErrorCode.DISK_FULL);
    expect(err.message).to.contain('needs 500 B').and.to.contain('300 B free').and.to.contain('in flight will still write 600 B');
    expect(err.message).to.not.match(/-\d/);
  });

  it('a sparse source reserves what it takes on disk; data beyond that is checked as it comes, and refused when the disk is short', async () => {
    let free = 10_000;
    const { reg, dir } = await registry({}, { free: () => free });
    const a = owner('a');
    // 1 MB of which the source takes 4 KiB on its disk: fits a disk with 10 KB free.
    const o = await reg.offer(a, { name: 's.bin', size: 1_000_000, mtimeMs: 1, allocated: 4096 });
    expect(reg.reserved).to.equal(4096);
    // Zeros leave a hole: nothing stored, nothing of the reservation used.
    await reg.chunk(a, chunkOf(o.lease, 0, Buffer.alloc(256 * 1024)));
    expect(reg.reserved).to.equal(4096);
    const data = randomBytes(8192);
    await reg.chunk(a, chunkOf(o.lease, 256 * 1024, data));
    expect(reg.reserved, 'the 4 KiB over what the offer said was checked and let through').to.equal(0);
    free = 0;
    await expectRejectsCode(reg.chunk(a, chunkOf(o.lease, 256 * 1024 + 8192, randomBytes(8192))), ErrorCode.DISK_FULL);
    expect(reg.active).to.equal(0);
    await eventually(async () => (await partialEntries(dir)).length === 0, 'the refused partial is removed');
  });

  it('release(owner) frees what it held and keeps the partial; the old lease is refused, a re-offer resumes', async () => {
    const { reg, dir } = await registry();
    const a = owner('a');
    const o = await reg.offer(a, { name: 'r.bin', size: 100, mtimeMs: 1 });
    await reg.chunk(a, chunkOf(o.lease, 0, Buffer.alloc(40, 1)));
    a.close();
    await reg.release(a);
    expect(reg.active).to.equal(0);
    expect(await partialEntries(dir)).to.have.length(2);
    const b = owner('b');
    await expectRejectsCode(reg.chunk(b, chunkOf(o.lease, 40, Buffer.alloc(60, 1))), ErrorCode.UNKNOWN_TRANSFER);
    expect((await reg.offer(b, { name: 'r.bin', size: 100, mtimeMs: 1 })).offset).to.equal(40);
  });

  it('an offer from an owner that is already gone is refused and leaves nothing held', async () => {
    const { reg } = await registry();
    const a = owner('a');
    a.close();
    await expectRejectsCode(reg.offer(a, { name: 'gone.bin', size: 10, mtimeMs: 1 }), ErrorCode.DISCONNECTED);
    expect(reg.active).to.equal(0);
  });

  it('refuses offers beyond the open transfers per owner with LIMIT; re-offering one it holds is fine', async () => {
    const { reg } = await registry({ maxTransfersPerConnection: 2 });
    const a = owner('a');
    await reg.offer(a, { name: '1.bin', size: 10, mtimeMs: 1 });
    await reg.offer(a, { name: '2.bin', size: 10, mtimeMs: 1 });
    await expectRejectsCode(reg.offer(a, { name: '3.bin', size: 10, mtimeMs: 1 }), ErrorCode.LIMIT);
    await reg.offer(a, { name: '2.bin', size: 10, mtimeMs: 1 });
    // Another owner has its own allowance.
    await reg.offer(owner('b'), { name: '3.bin', size: 10, mtimeMs: 1 });
  });

  it('a new version supersedes the old one: the old lease gets SUPERSEDED, a same-version takeover UNKNOWN_TRANSFER', async () => {
    const { reg } = await registry();
    const a = owner('a');
    const b = owner('b');
    const c = owner('c');
    const oa = await reg.offer(a, { name: 'v.bin', size: 10, mtimeMs: 1 });
    const ob = await reg.offer(b, { name: 'v.bin', size: 10, mtimeMs: 1 });
    expect(ob.tookOver).to.equal(true);
    await expectRejectsCode(reg.chunk(a, chunkOf(oa.lease, 0, Buffer.alloc(10))), ErrorCode.UNKNOWN_TRANSFER);
    await reg.offer(c, { name: 'v.bin', size: 10, mtimeMs: 2 });
    await expectRejectsCode(reg.chunk(b, chunkOf(ob.lease, 0, Buffer.alloc(10))), ErrorCode.SUPERSEDED);
  });

  it('releases an owned transfer that stayed idle, keeping its partial', async () => {
    const { reg, dir } = await registry({ transferIdleMs: 0 });
    const a = owner('a');
    const o = await reg.offer(a, { name: 'idle.bin', size: 100, mtimeMs: 1 });
    await reg.chunk(a, chunkOf(o.lease, 0, Buffer.alloc(10)));
    await reg.releaseIdle(Date.now() + 1);
    expect(reg.active).to.equal(0);
    expect(reg.reserved).to.equal(0);
    expect(await partialEntries(dir)).to.have.length(2);
  });

  it('answers "identical?" from a hash of the final file computed once while it is unchanged', async () => {
    const cap = captureLogger('debug');
    const { reg, dir } = await registry({}, { log: cap.logger });
    const bytes = randomBytes(50_000);
    const a = owner('a');
    const first = await reg.offer(a, { name: 'same.bin', size: bytes.length, mtimeMs: 1 });
    await reg.chunk(a, chunkOf(first.lease, 0, bytes));
    await reg.commit(a, { lease: first.lease, sha256: sha(bytes) });
    for (let i = 0; i < 5; i++) {
      const o = await reg.offer(a, { name: 'same.bin', size: bytes.length, mtimeMs: 1 });
      expect(o.existingSize).to.equal(bytes.length);
      expect(await reg.identical(a, { lease: o.lease, sha256: sha(Buffer.from('other')) })).to.deep.equal({ identical: false });
      await reg.abort(a, o.lease);
    }
    const o = await reg.offer(a, { name: 'same.bin', size: bytes.length, mtimeMs: 1 });
    const same = await reg.identical(a, { lease: o.lease, sha256: sha(bytes) });
    expect(same.identical).to.equal(true);
    expect(same.received).to.include({ name: 'same.bin', unchanged: true, sha256: sha(bytes) });
    // Published by this registry: its hash was known without reading the file back at all.
    expect(cap.lines.filter((l) => l.includes('final file hashed'))).to.have.length(0);
    expect(await partialEntries(dir)).to.deep.equal([]);
  });

  it('hashes the final file again once it changed (size, mtime or inode), so a stale hash never confirms other bytes', async () => {
    const cap = captureLogger('debug');
    const { reg, dir } = await registry({}, { log: cap.logger });
    const a = owner('a');
    const before = randomBytes(20_000);
    const after = randomBytes(20_000);
    await writeFile(path.join(dir, 'c.bin'), before);
    const ask = async (bytes: Buffer): Promise<boolean> => {
      const o = await reg.offer(a, { name: 'c.bin', size: bytes.length, mtimeMs: 1 });
      const reply = await reg.identical(a, { lease: o.lease, sha256: sha(bytes) });
      if (!reply.identical) await reg.abort(a, o.lease);
      return reply.identical;
    };
    expect(await ask(after)).to.equal(false);
    expect(await ask(after)).to.equal(false);
    // Same size, new bytes, a new mtime: the cached hash no longer applies.
    await writeFile(path.join(dir, 'c.bin'), after);
    await utimes(path.join(dir, 'c.bin'), new Date(), new Date(Date.now() + 5000));
    expect(await ask(after)).to.equal(true);
    expect(cap.lines.filter((l) => l.includes('final file hashed'))).to.have.length(2);
  });

  it('refuses every offer once closing', async () => {
    const { reg } = await registry();
    const a = owner('a');
    await reg.offer(a, { name: 'x.bin', size: 10, mtimeMs: 1 });
    await reg.close();
    expect(reg.active).to.equal(0);
    await expectRejectsCode(reg.offer(a, { name: 'y.bin', size: 10, mtimeMs: 1 }), ErrorCode.DISCONNECTED);
  });
});

/** A store whose open() waits at a gate the test opens: a step of an offer the test can stop in. */
class GatedStore extends PartialStore {
  reached!: Promise<void>;
  private arrive!: () => void;
  private gate: Promise<void>;
  release!: () => void;
  opened: OpenedPartial[] = [];

  constructor(root: string) {
    const hasher = new FileHasher();
    track(() => hasher.close());
    super(root, hasher);
    this.reached = new Promise((resolve) => (this.arrive = resolve));
    this.gate = new Promise((resolve) => (this.release = resolve));
  }

  override async open(name: string, id: { size: number; mtimeMs: number }): Promise<OpenedPartial> {
    this.arrive();
    await this.gate;
    const p = await super.open(name, id);
    this.opened.push(p);
    return p;
  }
}

async function gatedRegistry(): Promise<{ reg: TransferRegistry; store: GatedStore }> {
  const dir = await tmpDir('relay-registry-');
  const store = new GatedStore(dir);
  await store.init();
  const reg = new TransferRegistry({ root: dir, store, limits: LIMITS, log: testLogger('registry'), freeBytes: async () => 1e12 });
  track(() => reg.close());
  return { reg, store };
}

/** True once the descriptor is closed (a closed FileHandle reports fd -1). */
const closedFd = (p: OpenedPartial): boolean => p.fh.fd === -1;

describe('TransferRegistry: an offer in progress when its owner or the receiver goes away', () => {
  afterEach(closeAll);

  it('an owner that disconnects while its offer opens the partial holds nothing afterwards, and the file is closed', async () => {
    const { reg, store } = await gatedRegistry();
    const a = owner('a');
    const offer = reg.offer(a, { name: 'g.bin', size: 10, mtimeMs: 1 });
    await store.reached;
    a.close();
    await reg.release(a);
    store.release();
    await expectRejectsCode(offer, ErrorCode.DISCONNECTED);
    expect(reg.active).to.equal(0);
    expect(reg.reserved).to.equal(0);
    expect(closedFd(store.opened[0]!)).to.equal(true);
  });

  it('an offer still opening its partial when the registry closes is refused, not attached after the maps were cleared', async () => {
    const { reg, store } = await gatedRegistry();
    const a = owner('a');
    const offer = reg.offer(a, { name: 'g.bin', size: 10, mtimeMs: 1 });
    await store.reached;
    await reg.close();
    store.release();
    await expectRejectsCode(offer, ErrorCode.DISCONNECTED);
    expect(reg.active).to.equal(0);
    expect(closedFd(store.opened[0]!)).to.equal(true);
  });
});

describe('OfferCommitLock: one offer or commit per name at a time, bounded waits', () => {
  it('runs holders of one name one after another, other names at once', async () => {
    const lock = new OfferCommitLock();
    const order: string[] = [];
    const u1 = await lock.acquire('n', { timeoutMs: 1000 });
    const second = lock.acquire('n', { timeoutMs: 1000 }).then((u) => { order.push('second'); u(); });
    const other = await lock.acquire('m', { timeoutMs: 1000 });
    order.push('other');
    other();
    order.push('first');
    u1();
    await second;
    expect(order).to.deep.equal(['other', 'first', 'second']);
    expect(lock.size).to.equal(0);
  });

  it('gives up waiting with TIMEOUT, or DISCONNECTED when the waiter goes away; the next in line still gets it', async () => {
    const lock = new OfferCommitLock();
    const held = await lock.acquire('n', { timeoutMs: 1000 });
    await expectRejectsCode(lock.acquire('n', { timeoutMs: 10 }), ErrorCode.TIMEOUT);
    const controller = new AbortController();
    const aborted = lock.acquire('n', { timeoutMs: 10_000, signal: controller.signal });
    const after = lock.acquire('n', { timeoutMs: 10_000 });
    controller.abort();
    await expectRejectsCode(aborted, ErrorCode.DISCONNECTED);
    held();
    (await after)();
    expect(lock.size).to.equal(0);
  });
});
