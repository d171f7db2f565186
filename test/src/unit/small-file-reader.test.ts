import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { expect } from 'chai';
import { ErrorCode, MAX_CHUNK_SIZE, RelayError } from '@relayer/common';
import { AllowRoots, BATCH_LIMITS, planBatches, SmallFileReader, type SourceFile } from '@relayer/agent-sender';
import { closeAll, eventually, expectRejectsCode, tmpDir, track } from '../support/util.js';

const source = (file: string, size: number): SourceFile => ({ file, name: path.basename(file), size });

describe('SmallFileReader: small files read whole in a worker thread, with the agent\'s checks', () => {
  afterEach(closeAll);

  let root: string;
  let outside: string;
  beforeEach(async () => {
    root = await tmpDir('relay-root-');
    outside = await tmpDir('relay-outside-');
  });

  function reader(roots?: AllowRoots): SmallFileReader {
    const r = new SmallFileReader(roots);
    track(() => r.close());
    return r;
  }

  it('returns each file\'s bytes and sha256, in order, empty files included', async () => {
    const files: SourceFile[] = [];
    const datas: Buffer[] = [];
    for (let i = 0; i < 50; i++) {
      const data = randomBytes(i === 0 ? 0 : 100 * i);
      const p = path.join(root, `f${i}`);
      await writeFile(p, data);
      files.push(source(p, data.length));
      datas.push(data);
    }
    const got = await reader(await AllowRoots.resolve([root])).read(files, 1 << 20);
    got.forEach((g, i) => {
      expect(g).to.not.be.instanceOf(RelayError);
      if (g === 'large' || g instanceof RelayError) throw new Error('unexpected');
      expect(Buffer.compare(g.data, datas[i]!)).to.equal(0);
      expect(g.sha256).to.equal(createHash('sha256').update(datas[i]!).digest('hex'));
      expect(g.source.name).to.equal(`f${i}`);
    });
  });

  it('refuses a file outside every allowed root (NOT_ALLOWED), a missing one (SOURCE), a FIFO without hanging (SOURCE)', async () => {
    await writeFile(path.join(root, 'ok'), 'fine');
    await writeFile(path.join(outside, 'secret'), 'TOP SECRET');
    const fifo = path.join(root, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const got = await reader(await AllowRoots.resolve([root])).read(
      [source(path.join(root, 'ok'), 4), source(path.join(outside, 'secret'), 10), source(path.join(root, 'gone'), 1), source(fifo, 0)], 1 << 20,
    );
    expect(got[0]).to.not.be.instanceOf(RelayError);
    expect((got[1] as RelayError).code).to.equal(ErrorCode.NOT_ALLOWED);
    expect((got[2] as RelayError).code).to.equal(ErrorCode.SOURCE);
    expect((got[3] as RelayError).code).to.equal(ErrorCode.SOURCE);
  });

  it('an agent with no roots reads nothing; a direct send (no roots given) reads what its user can', async () => {
    await writeFile(path.join(outside, 'f'), 'x');
    const [denied] = await reader(await AllowRoots.resolve([])).read([source(path.join(outside, 'f'), 1)], 1 << 20);
    expect((denied as RelayError).code).to.equal(ErrorCode.NOT_ALLOWED);
    const [read] = await reader().read([source(path.join(outside, 'f'), 1)], 1 << 20);
    expect(read).to.not.be.instanceOf(RelayError);
  });

  it('a file that grew past the limit since it was listed comes back as large (it is then offered)', async () => {
    const p = path.join(root, 'grew');
    await writeFile(p, randomBytes(5000));
    const [got] = await reader().read([source(p, 10)], 4096);
    expect(got).to.equal('large');
  });

  it('its worker ends when idle and a later read starts a new one', async () => {
    const p = path.join(root, 'f');
    const data = randomBytes(3000);
    await writeFile(p, data);
    const r = new SmallFileReader(undefined, 50);
    track(() => r.close());
    expect(r.running).to.equal(false);
    const reads = await Promise.all(Array.from({ length: 20 }, () => r.read([source(p, data.length)], 1 << 20)));
    for (const [got] of reads) expect((got as { data: Buffer }).data.equals(data)).to.equal(true);
    expect(r.running).to.equal(true);
    await eventually(() => !r.running, 'the idle worker ended');
    const [again] = await r.read([source(p, data.length)], 1 << 20);
    expect((again as { data: Buffer }).data.equals(data)).to.equal(true);
    expect(r.running).to.equal(true);
  });

  it('a crashed worker fails the reads it had, and its late exit does not fail the next worker\'s', async () => {
    const p = path.join(root, 'f');
    const data = randomBytes(100);
    await writeFile(p, data);
    const r = reader();
    await r.read([source(p, data.length)], 1 << 20);
    // What Node does when a worker throws: 'error', and later 'exit'.
    const crashed = (r as unknown as { worker: import('node:worker_threads').Worker }).worker;
    crashed.emit('error', new Error('boom'));
    expect(r.running).to.equal(false);
    const next = r.read([source(p, data.length)], 1 << 20);
    crashed.emit('exit', 1);
    const [got] = await next;
    expect((got as { data: Buffer }).data.equals(data)).to.equal(true);
  });

  it('close() fails the reads still waiting with CANCELLED', async () => {
    const files: SourceFile[] = [];
    for (let i = 0; i < 64; i++) {
      const p = path.join(root, `c${i}`);
      await writeFile(p, randomBytes(16 * 1024));
      files.push(source(p, 16 * 1024));
    }
    const r = reader();
    const refused = expectRejectsCode(r.read(files, 1 << 20), ErrorCode.CANCELLED);
    await r.close();
    await refused;
  });

  it('after close() a read is refused with CANCELLED', async () => {
    await mkdir(path.join(root, 'd'));
    const r = reader();
    await r.close();
    await expectRejectsCode(r.read([source(path.join(root, 'd'), 0)], 1024), ErrorCode.CANCELLED);
  });
});

describe('planBatches: small files grouped into put frames within their limits', () => {
  const f = (name: string, size: number): SourceFile => ({ file: `/x/${name}`, name, size });

  it('keeps order, fills each batch up to its file count, and never puts more than its bytes in one', () => {
    const files = Array.from({ length: 200 }, (_, i) => f(`n${i}`, 1000));
    const batches = [...planBatches(files)];
    expect(batches.flat().map((x) => x.name)).to.deep.equal(files.map((x) => x.name));
    expect(batches.map((b) => b.length)).to.deep.equal([64, 64, 64, 8]);
    const big = Array.from({ length: 10 }, (_, i) => f(`b${i}`, 300 * 1024));
    for (const b of planBatches(big)) expect(b.reduce((n, x) => n + x.size + 3 * x.name.length, 0)).to.be.at.most(BATCH_LIMITS.bytes);
    expect([...planBatches([f('huge', MAX_CHUNK_SIZE)])]).to.deep.equal([[f('huge', MAX_CHUNK_SIZE)]]);
    expect([...planBatches([])]).to.deep.equal([]);
  });
});
