/**
 * How transfers end, as the registry tells it (TransferRegistry's onEnded, what the receiver's metrics
 * count): one event per end, whatever caused it, and the registry's own state follows that event.
 */
import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { FileHasher, Outcome, PartialStore, Release, TransferRegistry, type Owner, type RegistryLimits, type TransferEnd } from '@relayer/agent-receiver';
import { ErrorCode } from '@relayer/common';
import { chunkOf, closeAll, expectRejectsCode, partialEntries, testLogger, tmpDir, track } from '../support/util.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const LIMITS: RegistryLimits = { maxFileSize: 1e12, minFree: 0, maxTransfersPerConnection: 4, flushEvery: 0, transferIdleMs: 60_000, lockTimeoutMs: 5000 };

function owner(id: string): Owner & { close: () => void } {
  const controller = new AbortController();
  return { id, log: testLogger(id), signal: controller.signal, close: () => controller.abort() };
}

async function registry(limits: Partial<RegistryLimits> = {}, freeBytes: () => Promise<number> = async () => 1e12): Promise<{ reg: TransferRegistry; dir: string; ends: TransferEnd[] }> {
  const dir = await tmpDir('relay-ends-');
  const hasher = new FileHasher();
  track(() => hasher.close());
  const store = new PartialStore(dir, hasher);
  await store.init();
  const ends: TransferEnd[] = [];
  const reg = new TransferRegistry({ root: dir, store, limits: { ...LIMITS, ...limits }, log: testLogger('registry'), freeBytes, onEnded: (e) => ends.push(e) });
  track(() => reg.close());
  return { reg, dir, ends };
}

describe('TransferRegistry: one end event per end of a transfer', () => {
  afterEach(closeAll);

  it('a commit, a refusal and an unchanged file each end once, with the lease that held them', async () => {
    const { reg, ends } = await registry();
    const a = owner('a');
    const bytes = randomBytes(1000);
    const o = await reg.offer(a, { name: 'p.bin', size: bytes.length, mtimeMs: 1 });
    await reg.chunk(a, chunkOf(o.lease, 0, bytes));
    await reg.commit(a, { lease: o.lease, sha256: sha(bytes) });
    expect(ends).to.have.length(1);
    expect(ends[0]).to.include({ outcome: Outcome.PUBLISHED, lease: o.lease });
    expect((ends[0] as { durationMs?: number }).durationMs).to.be.a('number').and.at.least(0);

    const again = await reg.offer(a, { name: 'p.bin', size: bytes.length, mtimeMs: 1 });
    await reg.identical(a, { lease: again.lease, sha256: sha(bytes) });
    expect(ends[1]).to.include({ outcome: Outcome.UNCHANGED, lease: again.lease });

    const bad = await reg.offer(a, { name: 'o.bin', size: 10, mtimeMs: 1 });
    await expectRejectsCode(reg.chunk(a, chunkOf(bad.lease, 5, Buffer.alloc(6))), ErrorCode.OFFSET);
    // A late chunk of the refused lease is told so, and ends nothing more.
    await expectRejectsCode(reg.chunk(a, chunkOf(bad.lease, 0, Buffer.alloc(5))), ErrorCode.UNKNOWN_TRANSFER);
    expect(ends.slice(2)).to.deep.equal([{ outcome: Outcome.REFUSED, code: ErrorCode.OFFSET, lease: bad.lease }]);
    expect([reg.active, reg.reserved]).to.deep.equal([0, 0]);
  });

  it('an offer refused before it holds a transfer is told as refused with its code (LIMIT too: metrics leave out what the sender retries)', async () => {
    const { reg, ends } = await registry({ maxFileSize: 100, maxTransfersPerConnection: 1 });
    const a = owner('a');
    await expectRejectsCode(reg.offer(a, { name: 'big.bin', size: 101, mtimeMs: 1 }), ErrorCode.TOO_LARGE);
    await reg.offer(a, { name: '1.bin', size: 10, mtimeMs: 1 });
    await expectRejectsCode(reg.offer(a, { name: '2.bin', size: 10, mtimeMs: 1 }), ErrorCode.LIMIT);
    expect(ends).to.deep.equal([{ outcome: Outcome.REFUSED, code: ErrorCode.TOO_LARGE }, { outcome: Outcome.REFUSED, code: ErrorCode.LIMIT }]);
  });

  it('release, abort, idle and takeover end an attachment as RELEASED (partial kept); the next offer resumes it', async () => {
    const { reg, dir, ends } = await registry({ transferIdleMs: 0 });
    const a = owner('a');
    const b = owner('b');
    const o1 = await reg.offer(a, { name: 'r.bin', size: 100, mtimeMs: 1 });
    await reg.chunk(a, chunkOf(o1.lease, 0, Buffer.alloc(10, 1)));
    const o2 = await reg.offer(b, { name: 'r.bin', size: 100, mtimeMs: 1 });
    expect(o2).to.include({ tookOver: true, offset: 10 });
    await reg.abort(b, o2.lease);
    const o3 = await reg.offer(a, { name: 'r.bin', size: 100, mtimeMs: 1 });
    await reg.releaseIdle(Date.now() + 1);
    const o4 = await reg.offer(a, { name: 'r.bin', size: 100, mtimeMs: 1 });
    await reg.release(a);
    expect(ends).to.deep.equal([
      { outcome: Outcome.RELEASED, why: Release.TAKEN_OVER, lease: o1.lease },
      { outcome: Outcome.RELEASED, why: Release.ABORTED, lease: o2.lease },
      { outcome: Outcome.RELEASED, why: Release.IDLE, lease: o3.lease },
      { outcome: Outcome.RELEASED, why: Release.CONNECTION_LOST, lease: o4.lease },
    ]);
    expect([reg.active, reg.reserved]).to.deep.equal([0, 0]);
    expect(await partialEntries(dir)).to.have.length(2);
  });

  it('a new version ends a held transfer SUPERSEDED (its lease is told so), an abandoned one without a lease', async () => {
    const { reg, ends } = await registry();
    const a = owner('a');
    const b = owner('b');
    const held = await reg.offer(a, { name: 'v.bin', size: 10, mtimeMs: 1 });
    await reg.offer(b, { name: 'v.bin', size: 10, mtimeMs: 2 });
    await expectRejectsCode(reg.chunk(a, chunkOf(held.lease, 0, Buffer.alloc(10))), ErrorCode.SUPERSEDED);
    await reg.release(b);
    await reg.offer(a, { name: 'v.bin', size: 10, mtimeMs: 3 });
    expect(ends.map((e) => [e.outcome, e.lease === undefined ? 'none' : e.lease === held.lease ? 'held' : 'other'])).to.deep.equal([
      [Outcome.SUPERSEDED, 'held'],
      [Outcome.RELEASED, 'other'],
      [Outcome.SUPERSEDED, 'none'],
    ]);
  });

  it('a put of a name supersedes the transfer of it, and each file of the put ends once', async () => {
    const { reg, ends } = await registry({ maxFileSize: 1000 });
    const a = owner('a');
    const held = await reg.offer(a, { name: 'x.bin', size: 10, mtimeMs: 1 });
    const small = Buffer.from('hello');
    const reply = await reg.put(a, { id: 'p', files: [
      { name: 'x.bin', sha256: sha(small), data: small },
      { name: 'y.bin', sha256: sha(small), data: small },
      { name: 'big.bin', sha256: sha(Buffer.alloc(1001)), data: Buffer.alloc(1001) },
    ] });
    expect(reply.results.map((r) => r.ok)).to.deep.equal([true, true, false]);
    expect(ends).to.deep.include({ outcome: Outcome.SUPERSEDED, lease: held.lease });
    expect(ends.filter((e) => e.outcome !== Outcome.SUPERSEDED)).to.deep.equal([
      { outcome: Outcome.PUBLISHED, bytes: 5 }, { outcome: Outcome.PUBLISHED, bytes: 5 }, { outcome: Outcome.REFUSED, code: ErrorCode.TOO_LARGE },
    ]);
    expect([reg.active, reg.reserved]).to.deep.equal([0, 0]);
  });

  it('a sweep while an offer of an abandoned transfer waits for its space check leaves the transfer to that offer', async () => {
    let gate: Promise<void> = Promise.resolve();
    const { reg } = await registry({}, async () => {
      await gate;
      return 1e12;
    });
    const a = owner('a');
    const o = await reg.offer(a, { name: 's.bin', size: 100, mtimeMs: 1 });
    await reg.chunk(a, chunkOf(o.lease, 0, Buffer.alloc(40, 1)));
    await reg.release(a);
    let open!: () => void;
    gate = new Promise((resolve) => (open = resolve));
    const b = owner('b');
    const offering = reg.offer(b, { name: 's.bin', size: 100, mtimeMs: 1 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    gate = Promise.resolve();
    await reg.sweep(0, Date.now() + 60_000);
    open();
    const resumed = await offering;
    expect(resumed.offset).to.equal(40);
    await reg.chunk(b, chunkOf(resumed.lease, 40, Buffer.alloc(60, 1)));
    await reg.commit(b, { lease: resumed.lease, sha256: sha(Buffer.alloc(100, 1)) });
    expect([reg.active, reg.reserved]).to.deep.equal([0, 0]);
  });
});
