/** The space budget on its own: a free-space figure the test sets, reservations as handles. */
import { expect } from 'chai';
import { SpaceBudget, type Reservation } from '@relayer/agent-receiver';
import { ErrorCode } from '@relayer/common';
import { expectRejectsCode } from '../support/util.js';

describe('SpaceBudget: promised space, one handle per promise', () => {
  it('reserves what fits beside --min-free and what is promised already; DISK_FULL says both figures', async () => {
    const budget = new SpaceBudget(async () => 1000, 100);
    const a = await budget.reserve(600, 'a.bin');
    expect(budget.reserved).to.equal(600);
    const err = await expectRejectsCode(budget.reserve(301, 'b.bin'), ErrorCode.DISK_FULL);
    expect(err.message).to.contain('not enough space for b.bin').and.to.contain('in flight will still write 600 B').and.to.contain('--min-free keeps 100 B');
    expect(budget.reserved, 'a refused reservation promises nothing').to.equal(600);
    await budget.reserve(300, 'b.bin');
    expect(budget.reserved).to.equal(900);
    a.release();
    expect(budget.reserved).to.equal(300);
  });

  it('a reservation the asker replaces is not counted against it', async () => {
    const budget = new SpaceBudget(async () => 1000, 0);
    const old = await budget.reserve(800, 'f.bin');
    await expectRejectsCode(budget.reserve(800, 'f.bin'), ErrorCode.DISK_FULL);
    const again = await budget.reserve(800, 'f.bin', old);
    old.release();
    expect(budget.reserved).to.equal(again.held).and.to.equal(800);
    // A released one no longer counts, so excluding it changes nothing.
    await expectRejectsCode(budget.check('g.bin', 201, old), ErrorCode.DISK_FULL);
  });

  it('consume and resize move the total with the handle; release is once; the total never goes below 0', async () => {
    const budget = new SpaceBudget(async () => 1e9, 0);
    const r = await budget.reserve(100, 'x');
    r.consume(30);
    expect([r.held, budget.reserved]).to.deep.equal([70, 70]);
    r.consume(1000);
    expect([r.held, budget.reserved], 'more on disk than promised: the promise is used up, no more').to.deep.equal([0, 0]);
    r.resize(50);
    expect(budget.reserved).to.equal(50);
    r.consume(-5);
    r.resize(Number.NaN);
    expect(budget.reserved, 'nonsense figures promise nothing').to.equal(0);
    r.resize(40);
    r.release();
    r.release();
    r.resize(500);
    r.consume(10);
    expect([r.held, budget.reserved], 'a released handle is inert').to.deep.equal([0, 0]);
  });

  it('close() releases every live reservation: their later release, resize or consume change nothing', async () => {
    const budget = new SpaceBudget(async () => 1e9, 0);
    const live = [await budget.reserve(10, 'a'), await budget.reserve(20, 'b')];
    budget.close();
    expect(budget.reserved).to.equal(0);
    for (const r of live) {
      r.resize(99);
      r.release();
    }
    expect(budget.reserved).to.equal(0);
    const after = await budget.reserve(5, 'c');
    expect(budget.reserved).to.equal(after.held).and.to.equal(5);
  });

  it('after any sequence of reserve, consume, resize, release and close the total is the sum of the live handles', async () => {
    let seed = 7;
    const next = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const budget = new SpaceBudget(async () => 1e12, 0);
    const handles: { r: Reservation; released: boolean }[] = [];
    for (let step = 0; step < 1000; step++) {
      const h = handles.length ? handles[next(handles.length)]! : undefined;
      switch (next(6)) {
        case 0:
        case 1:
          handles.push({ r: await budget.reserve(next(1000), 'x'), released: false });
          break;
        case 2:
          h?.r.consume(next(300));
          break;
        case 3:
          h?.r.resize(next(1000));
          break;
        case 4:
          if (h) {
            h.r.release();
            h.released = true;
          }
          break;
        default:
          if (next(50) === 0) {
            budget.close();
            for (const x of handles) x.released = true;
          }
      }
      const sum = handles.filter((x) => !x.released).reduce((n, x) => n + x.r.held, 0);
      expect(budget.reserved, `step ${step}`).to.equal(sum);
      expect(budget.reserved).to.be.at.least(0);
      if (h?.released) expect(h.r.held).to.equal(0);
    }
  });
});
