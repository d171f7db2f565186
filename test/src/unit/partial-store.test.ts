/** The partial store on real files: what a resume continues from, what a sweep removes, what survives. */
import { createHash } from 'node:crypto';
import { readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { FileHasher, PartialStore, partialKey } from '@relayer/agent-receiver';
import { closeAll, partialEntries, tmpDir, track } from '../support/util.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function store(): Promise<{ s: PartialStore; dir: string }> {
  const dir = await tmpDir('relay-store-');
  const hasher = new FileHasher();
  track(() => hasher.close());
  const s = new PartialStore(dir, hasher);
  await s.init();
  return { s, dir };
}

describe('PartialStore: one .part and one .json per transfer in progress', () => {
  afterEach(closeAll);

  it('opens a new partial at 0, and resumes the same source at the bytes held with their hash', async () => {
    const { s } = await store();
    const id = { size: 100, mtimeMs: 7 };
    const first = await s.open('a/b.bin', id);
    expect(first).to.include({ offset: 0, resumed: false, key: partialKey('a/b.bin') });
    await first.fh.write(Buffer.alloc(40, 3), 0, 40, 0);
    await first.fh.close();
    expect(await s.peek('a/b.bin', id)).to.equal(40);
    const again = await s.open('a/b.bin', id);
    expect(again).to.include({ offset: 40, resumed: true });
    expect(await again.digest.digest(40)).to.equal(sha(Buffer.alloc(40, 3)));
    await again.fh.close();
  });

  it('starts over for another source version (size or mtime) and never resumes its bytes', async () => {
    const { s } = await store();
    const p = await s.open('v.bin', { size: 100, mtimeMs: 1 });
    await p.fh.write(Buffer.alloc(50, 1), 0, 50, 0);
    await p.fh.close();
    expect(await s.peek('v.bin', { size: 100, mtimeMs: 2 })).to.equal(0);
    const other = await s.open('v.bin', { size: 100, mtimeMs: 2 });
    expect(other.offset).to.equal(0);
    expect((await other.fh.stat()).size).to.equal(0);
    await other.fh.close();
  });

  it('publishes a partial under its final name (creating folders) and removes its meta', async () => {
    const { s, dir } = await store();
    const p = await s.open('x.bin', { size: 5, mtimeMs: 1 });
    await p.fh.write(Buffer.from('hello'), 0, 5, 0);
    await p.fh.close();
    await s.publish(p.key, path.join(dir, 'deep/er/x.bin'));
    expect(await readFile(path.join(dir, 'deep/er/x.bin'), 'utf8')).to.equal('hello');
    expect(await partialEntries(dir)).to.deep.equal([]);
  });

  it('sweeps partials older than the TTL and orphans older than a minute, keeping active and fresh ones', async () => {
    const { s, dir } = await store();
    for (const name of ['old.bin', 'fresh.bin', 'active.bin']) await (await s.open(name, { size: 10, mtimeMs: 1 })).fh.close();
    const pdir = path.join(dir, '.relay-partial');
    const old = new Date(Date.now() - 48 * 3_600_000);
    for (const name of ['old.bin', 'active.bin']) {
      for (const ext of ['part', 'json']) await utimes(path.join(pdir, `${partialKey(name)}.${ext}`), old, old);
    }
    // An orphan is named as the store names its files: the sweep never removes a name it did not create.
    const orphan = path.join(pdir, `${partialKey('orphan.bin')}.part`);
    await writeFile(orphan, 'x');
    await utimes(orphan, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
    const removed = await s.sweep(24 * 3_600_000, (key) => key === partialKey('active.bin'));
    expect(removed.sort()).to.deep.equal([partialKey('old.bin'), partialKey('orphan.bin')].sort());
    const left = (await partialEntries(dir)).sort();
    expect(left).to.deep.equal([`${partialKey('active.bin')}.json`, `${partialKey('active.bin')}.part`, `${partialKey('fresh.bin')}.json`, `${partialKey('fresh.bin')}.part`].sort());
  });

  it('a key claimed while the sweep runs is left alone; an open during its removal waits and starts fresh', async () => {
    const { s, dir } = await store();
    const pdir = path.join(dir, '.relay-partial');
    const names = Array.from({ length: 40 }, (_, i) => `f${i}.bin`);
    for (const name of names) {
      const p = await s.open(name, { size: 10, mtimeMs: 1 });
      await p.fh.write(Buffer.alloc(5, 1), 0, 5, 0);
      await p.fh.close();
      const old = new Date(Date.now() - 48 * 3_600_000);
      for (const ext of ['part', 'json']) await utimes(path.join(pdir, `${partialKey(name)}.${ext}`), old, old);
    }
    // The registry claims a key before it peeks or opens it, and the sweep asks again right before removing.
    // Here: the first key is claimed before the sweep reaches it; the last is claimed and opened just as
    // its removal starts (after the sweep's second look), so the open must wait and start fresh.
    const first = partialKey(names[0]!);
    const last = partialKey(names[names.length - 1]!);
    const claimed = new Set<string>([first]);
    const asked = new Map<string, number>();
    let opened: Promise<{ offset: number }> | undefined;
    const removed = await s.sweep(24 * 3_600_000, (key) => {
      asked.set(key, (asked.get(key) ?? 0) + 1);
      if (key === last && asked.get(key) === 2 && !claimed.has(key)) {
        queueMicrotask(() => {
          claimed.add(last);
          opened = s.open(names[names.length - 1]!, { size: 10, mtimeMs: 1 }).then(async (p) => { await p.fh.close(); return p; });
        });
        return false;
      }
      return claimed.has(key);
    });
    expect(opened, 'the sweep reached the last key').to.not.equal(undefined);
    const reopened = await opened!;
    expect(removed).to.have.length(names.length - 1).and.include(last).and.not.include(first);
    expect(reopened.offset, 'an open that raced the removal starts fresh, not on bytes being deleted').to.equal(0);
    expect((await partialEntries(dir)).sort()).to.deep.equal([`${first}.json`, `${first}.part`, `${last}.json`, `${last}.part`].sort());
  });

  it('makes its folder again when it was removed under a running receiver, and says whether it is usable', async () => {
    const { s, dir } = await store();
    await rm(path.join(dir, '.relay-partial'), { recursive: true });
    expect(await s.usable()).to.equal(false);
    const p = await s.open('back.bin', { size: 1, mtimeMs: 1 });
    await p.fh.close();
    expect(await s.usable()).to.equal(true);
    expect((await stat(path.join(dir, '.relay-partial'))).mode & 0o777).to.equal(0o700);
  });

  it('sweeps a put\'s temporary file left by a crash once it is older than a minute, never an active or fresh one', async () => {
    const { s, dir } = await store();
    const stale = s.putPath(partialKey('stale.bin'));
    const fresh = s.putPath(partialKey('fresh.bin'));
    const active = s.putPath(partialKey('active.bin'));
    for (const f of [stale, fresh, active]) await writeFile(f, 'x');
    const old = new Date(Date.now() - 120_000);
    for (const f of [stale, active]) await utimes(f, old, old);
    const removed = await s.sweep(24 * 3_600_000, (key) => key === partialKey('active.bin'));
    expect(removed).to.deep.equal([partialKey('stale.bin')]);
    expect((await partialEntries(dir)).sort()).to.deep.equal([path.basename(active), path.basename(fresh)].sort());
  });
});
