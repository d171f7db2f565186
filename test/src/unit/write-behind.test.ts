/**
 * The receiver's background flushes of a partial: one datasync per `every` bytes written, never two at
 * once, none when off, and a failed one reported (the commit's own fsync would not see it again).
 */
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { FlushSlots, WriteBehind } from '@relayer/agent-receiver';
import { tmpDir } from '../support/util.js';

/** A real file's handle whose datasync calls are counted. */
async function countedFile(): Promise<{ fh: FileHandle; syncs: () => number }> {
  const fh = await open(path.join(await tmpDir(), 'partial'), 'w+');
  let syncs = 0;
  const datasync = fh.datasync.bind(fh);
  fh.datasync = () => {
    syncs++;
    return datasync();
  };
  return { fh, syncs: () => syncs };
}

describe('WriteBehind: a partial is flushed while it arrives', () => {
  it('flushes once per `every` bytes written, one flush at a time', async () => {
    const { fh, syncs } = await countedFile();
    const errors: unknown[] = [];
    const wb = new WriteBehind(fh, 1000, new FlushSlots(), (e: unknown) => errors.push(e));
    try {
      await fh.write(Buffer.alloc(2000, 1));
      wb.wrote(400);
      wb.wrote(400);
      expect(syncs()).to.equal(0);
      wb.wrote(400);
      expect(syncs()).to.equal(1);
      // Written while that flush runs: no second one until it is done.
      wb.wrote(5000);
      expect(syncs()).to.equal(1);
      await wb.settle();
      wb.wrote(1000);
      expect(syncs()).to.equal(2);
      await wb.settle();
      expect(errors).to.deep.equal([]);
    } finally {
      await fh.close();
    }
  });

  it("shares one flush at a time with the receiver's other partials: a partial whose turn is taken flushes at its next write", async () => {
    const a = await countedFile();
    const b = await countedFile();
    const slots = new FlushSlots(1);
    const wa = new WriteBehind(a.fh, 100, slots, () => undefined);
    const wb = new WriteBehind(b.fh, 100, slots, () => undefined);
    try {
      wa.wrote(100);
      wb.wrote(100);
      expect([a.syncs(), b.syncs()]).to.deep.equal([1, 0]);
      expect(slots.busy).to.equal(1);
      await wa.settle();
      expect(slots.busy).to.equal(0);
      wb.wrote(1);
      expect([a.syncs(), b.syncs()]).to.deep.equal([1, 1]);
      await wb.settle();
      expect(slots.busy).to.equal(0);
    } finally {
      await a.fh.close();
      await b.fh.close();
    }
  });

  it('never flushes when `every` is 0 (all is left to the commit)', async () => {
    const { fh, syncs } = await countedFile();
    const wb = new WriteBehind(fh, 0, new FlushSlots(), () => undefined);
    try {
      for (let i = 0; i < 10; i++) wb.wrote(1 << 30);
      await wb.settle();
      expect(syncs()).to.equal(0);
    } finally {
      await fh.close();
    }
  });

  it('reports a failed flush once, and settle() still resolves', async () => {
    const { fh } = await countedFile();
    const errors: NodeJS.ErrnoException[] = [];
    const wb = new WriteBehind(fh, 10, new FlushSlots(), (e: unknown) => errors.push(e as NodeJS.ErrnoException));
    await fh.close();
    wb.wrote(10);
    await wb.settle();
    expect(errors).to.have.length(1);
    expect(errors[0]!.code).to.equal('EBADF');
  });
});
