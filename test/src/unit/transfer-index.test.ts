/** The transfer index on its own: transfers as plain named objects, owners as plain objects. */
import { expect } from 'chai';
import { SpaceBudget, TransferIndex, type Holding, type Indexed, type Owner } from '@relayer/agent-receiver';
import { testLogger } from '../support/util.js';

const owner = (id: string): Owner => ({ id, log: testLogger(id), signal: new AbortController().signal });
const transfer = (name: string): Indexed => ({ name, key: `key-of-${name}` });

/** Every map of the index says the same about every transfer, and the budget holds exactly what the holdings hold. */
function expectAgree(index: TransferIndex<Indexed>, budget: SpaceBudget, owners: Owner[], all: Indexed[]): void {
  const holdings = index.holdings();
  expect(index.held).to.equal(holdings.length);
  for (const h of holdings) {
    expect(index.holding(h.lease)).to.equal(h);
    expect(index.holdingOf(h.transfer)).to.equal(h);
    expect(index.heldBy(h.owner)).to.include(h);
    expect(index.named(h.transfer.name), 'a held transfer is named').to.equal(h.transfer);
  }
  expect(owners.reduce((n, o) => n + index.countOf(o), 0)).to.equal(holdings.length);
  for (const o of owners) expect(index.heldBy(o).every((h) => h.owner === o && index.holdingOf(h.transfer) === h)).to.equal(true);
  for (const t of all) {
    const named = index.named(t.name) === t;
    expect(index.inUse(t.key), `${t.name}'s key in use exactly when its name is`).to.equal(index.named(t.name) !== undefined);
    if (!named) expect(index.holdingOf(t), 'an unnamed transfer is not held').to.equal(undefined);
  }
  expect(budget.reserved).to.equal(holdings.reduce((n, h) => n + h.reservation.held, 0));
}

describe('TransferIndex: names, holdings and leases kept in step', () => {
  it('attach makes one holding seen from its lease, its transfer and its owner; detach ends all three and the reservation', async () => {
    const budget = new SpaceBudget(async () => 1e9, 0);
    const index = new TransferIndex<Indexed>();
    const a = owner('a');
    const t = transfer('f.bin');
    index.add(t);
    const h = index.attach(t, a, 'lease-1', await budget.reserve(100, 'f.bin'));
    expect([index.holding('lease-1'), index.holdingOf(t), index.heldBy(a)[0]]).to.deep.equal([h, h, h]);
    expect(budget.reserved).to.equal(100);
    index.detach(t);
    expect([index.holding('lease-1'), index.holdingOf(t), index.countOf(a), index.held]).to.deep.equal([undefined, undefined, 0, 0]);
    expect(budget.reserved).to.equal(0);
    expect(index.named('f.bin'), 'the name stays until it is forgotten').to.equal(t);
    index.detach(t);
    index.forget(t);
    expect(index.named('f.bin')).to.equal(undefined);
    expect(index.inUse(t.key)).to.equal(false);
  });

  it('refuses what would leave the maps disagreeing: attaching twice, a transfer it does not name, a lease in use, a second transfer of a name', async () => {
    const budget = new SpaceBudget(async () => 1e9, 0);
    const index = new TransferIndex<Indexed>();
    const t = transfer('f.bin');
    const u = transfer('g.bin');
    expect(() => index.attach(t, owner('a'), 'l1', undefined as never)).to.throw(/not in the index/);
    index.add(t);
    index.add(u);
    index.attach(t, owner('a'), 'l1', await budget.reserve(1, 'x'));
    expect(() => index.attach(t, owner('b'), 'l2', undefined as never)).to.throw(/attached twice/);
    expect(() => index.attach(u, owner('b'), 'l1', undefined as never)).to.throw(/in use/);
    expect(() => index.add(transfer('f.bin'))).to.throw(/already has a transfer/);
    index.add(t);
    expect(index.holdingOf(t)?.lease, 'adding the same transfer again changes nothing').to.equal('l1');
  });

  it('forgetting a held transfer ends its holding too; a claimed key is in use without a transfer', async () => {
    const budget = new SpaceBudget(async () => 1e9, 0);
    const index = new TransferIndex<Indexed>();
    const t = transfer('f.bin');
    index.add(t);
    index.attach(t, owner('a'), 'l1', await budget.reserve(50, 'x'));
    index.forget(t);
    expect([index.held, budget.reserved, index.holding('l1')]).to.deep.equal([0, 0, undefined]);
    index.claim('k');
    expect([index.inUse('k'), index.claimed('k')]).to.deep.equal([true, true]);
    index.unclaim('k');
    expect(index.inUse('k')).to.equal(false);
  });

  it('remembers the most recent superseded leases only', () => {
    const index = new TransferIndex<Indexed>(3);
    for (const l of ['a', 'b', 'c', 'd']) index.markSuperseded(l);
    expect(['a', 'b', 'c', 'd'].map((l) => index.wasSuperseded(l))).to.deep.equal([false, true, true, true]);
  });

  it('after any sequence of add, attach, detach, forget and clear, every map agrees', async () => {
    let seed = 11;
    const next = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const budget = new SpaceBudget(async () => 1e12, 0);
    const index = new TransferIndex<Indexed>();
    const owners = ['a', 'b', 'c'].map(owner);
    const all: Indexed[] = [];
    let leases = 0;
    for (let step = 0; step < 3000; step++) {
      const t = all.length ? all[next(all.length)]! : undefined;
      switch (next(8)) {
        case 0:
        case 1: {
          const name = `f${next(12)}`;
          if (index.named(name)) break;
          const fresh = transfer(name);
          all.push(fresh);
          index.add(fresh);
          break;
        }
        case 2:
        case 3:
          if (t && index.named(t.name) === t) {
            // What the registry does: the old holding ends first, then the new one is made.
            index.detach(t);
            const h: Holding<Indexed> = index.attach(t, owners[next(3)]!, `lease-${++leases}`, await budget.reserve(next(1000), t.name));
            expect(h.transfer).to.equal(t);
          }
          break;
        case 4:
          if (t) index.holdingOf(t)?.reservation.consume(next(500));
          break;
        case 5:
          if (t) index.detach(t);
          break;
        case 6:
          if (t) index.forget(t);
          break;
        default:
          if (next(40) === 0) index.clear();
      }
      expectAgree(index, budget, owners, all);
    }
  });
});
