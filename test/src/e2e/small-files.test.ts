import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { expect } from 'chai';
import { ErrorCode, MAX_CHUNK_SIZE, MAX_PUT_FILES, MAX_PUT_ID, PARTIAL_DIR, type PutReply, type ReceivedFrame } from '@relayer/common';
import { TRANSFER_DEFAULTS } from '@relayer/agent-sender';
import { FaultProxy } from '../support/proxy.js';
import { count, scrape } from '../support/metrics.js';
import {
  closeAll, partialEntries, rawClient, send, sha256File, startReceiver, tmpDir, track, type RandomFile,
} from '../support/util.js';

/** A tree of small files of assorted sizes (empty ones included) under dir/name. */
async function smallTree(dir: string, name: string, n: number, maxSize = 6000): Promise<RandomFile[]> {
  const files: RandomFile[] = [];
  for (let i = 0; i < n; i++) {
    const data = randomBytes(i % 17 === 0 ? 0 : 1 + ((i * 7919) % maxSize));
    const p = path.join(dir, name, `d${i % 5}`, `f${i}.bin`);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, data);
    files.push({ path: p, size: data.length, sha256: createHash('sha256').update(data).digest('hex') });
  }
  return files;
}

const sha = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

describe('small files travel whole: many per put frame, each verified, durable and confirmed on its own', () => {
  afterEach(closeAll);

  it('a folder of 300 small files and one large one arrives byte-identical, one confirmation per file', async () => {
    const r = await startReceiver();
    const src = await tmpDir('relay-src-');
    const files = await smallTree(src, 'out', 300);
    const big = randomBytes(TRANSFER_DEFAULTS.smallFileMax + 1);
    await writeFile(path.join(src, 'out', 'big.bin'), big);

    const res = await send([path.join(src, 'out')], [r.url]);
    expect(res.ok, JSON.stringify(res.failed[0])).to.equal(true);
    expect(res.received).to.have.length(301);
    const whole = res.received.filter((e) => e.small);
    expect(whole).to.have.length(300);
    expect(res.received.find((e) => e.name === 'out/big.bin')!.small).to.equal(undefined);
    for (const f of files) {
      const name = path.relative(src, f.path).split(path.sep).join('/');
      const got = res.received.find((e) => e.name === name)!;
      expect(got, name).to.include({ size: f.size, sha256: f.sha256, unchanged: false, path: path.join(r.dir, name) });
      expect(await sha256File(path.join(r.dir, name))).to.equal(f.sha256);
    }
    expect(await sha256File(path.join(r.dir, 'out', 'big.bin'))).to.equal(sha(big));
    expect(await partialEntries(r.dir)).to.deep.equal([]);
    expect(count(await scrape(r.url), 'relay_receiver_transfers_total', { outcome: 'published', code: 'none' })).to.equal(301);

    const again = await send([path.join(src, 'out')], [r.url]);
    expect(again.ok).to.equal(true);
    expect(again.received.filter((e) => e.small && e.unchanged && e.bytesSent === 0)).to.have.length(300);
  });

  it('with --small-max 0 every file is offered and sent in chunks, as before', async () => {
    const r = await startReceiver();
    const src = await tmpDir('relay-src-');
    const files = await smallTree(src, 'few', 20);
    const res = await send([path.join(src, 'few')], [r.url], { transfer: { smallFileMax: 0 } });
    expect(res.ok).to.equal(true);
    expect(res.received.filter((e) => e.small)).to.have.length(0);
    for (const f of files) expect(await sha256File(path.join(r.dir, path.relative(src, f.path)))).to.equal(f.sha256);
  });

  it('a file the receiver refuses fails alone: the rest of its batch is published', async () => {
    const r = await startReceiver();
    const src = await tmpDir('relay-src-');
    const files = await smallTree(src, 'mixed', 40);
    // On the receiver, one name of the batch is a symlink (to a file outside its folder).
    const outside = await tmpDir('relay-outside-');
    await writeFile(path.join(outside, 'secret'), 'do not touch');
    await mkdir(path.join(r.dir, 'mixed', 'd3'), { recursive: true });
    await symlink(path.join(outside, 'secret'), path.join(r.dir, 'mixed', 'd3', 'f3.bin'));

    const res = await send([path.join(src, 'mixed')], [r.url]);
    expect(res.ok).to.equal(false);
    expect(res.failed.map((e) => [e.name, e.code])).to.deep.equal([['mixed/d3/f3.bin', ErrorCode.BAD_NAME]]);
    expect(res.received).to.have.length(39);
    expect(await readFile(path.join(outside, 'secret'), 'utf8')).to.equal('do not touch');
    for (const f of files.filter((x) => !x.path.endsWith(`${path.sep}f3.bin`))) {
      expect(await sha256File(path.join(r.dir, path.relative(src, f.path)))).to.equal(f.sha256);
    }
  });

  it('the receiver publishes nothing whose bytes do not match their sha256, and leaves no temporary file', async () => {
    const r = await startReceiver();
    const c = await rawClient(r.url);
    const good = randomBytes(1000);
    const bad = randomBytes(1000);
    const reply = await c.request<PutReply>('put', {
      id: 'p1',
      files: [
        { name: 'good.bin', sha256: sha(good), data: good },
        { name: 'bad.bin', sha256: sha(randomBytes(1000)), data: bad },
      ],
    });
    expect(reply.ok).to.equal(true);
    if (!reply.ok) return;
    const [g, b] = reply.results;
    expect(g).to.deep.equal({ ok: true });
    // The confirmation is the "received" event, which came before the ack: the good file only, under put id:index.
    expect(c.received).to.have.length(1);
    const frames = c.received[0] as ReceivedFrame[];
    expect(frames).to.have.length(1);
    expect(frames[0]).to.include({ lease: 'p1:0', name: 'good.bin', size: 1000, sha256: sha(good), unchanged: false });
    expect(b).to.deep.include({ ok: false });
    expect(!b!.ok && b!.error.code).to.equal(ErrorCode.CHECKSUM);
    expect(await readdir(r.dir)).to.deep.equal([PARTIAL_DIR, 'good.bin'].sort());
    expect(await readdir(path.join(r.dir, PARTIAL_DIR))).to.deep.equal([]);
  });

  it('refuses malformed put frames with PROTOCOL and writes nothing', async () => {
    const r = await startReceiver();
    const c = await rawClient(r.url);
    const one = (name: string, data: Uint8Array = Buffer.alloc(10)) => ({ name, sha256: sha(data), data });
    const cases: unknown[] = [
      {},
      { id: 'x', files: [] },
      { id: 'x', files: 'x' },
      { id: 'x', files: Array.from({ length: MAX_PUT_FILES + 1 }, (_, i) => one(`n${i}`)) },
      { id: 'x', files: [one('a'), { name: 'b', sha256: 'nothex', data: Buffer.alloc(1) }] },
      { id: 'x', files: [{ name: 'c', sha256: sha(Buffer.alloc(1)), data: 'not bytes' }] },
      // Over the frame budget in total, though each file is within the per-file limit.
      { id: 'x', files: [one('d', Buffer.alloc(MAX_CHUNK_SIZE / 2)), one('e', Buffer.alloc(MAX_CHUNK_SIZE / 2 + 1))] },
      // Without an id its confirmations could not be told apart, or with one too long for their leases.
      { files: [one('f')] },
      { id: '', files: [one('g')] },
      { id: 'i'.repeat(MAX_PUT_ID + 1), files: [one('h')] },
    ];
    for (const frame of cases) {
      const reply = await c.request('put', frame);
      expect(reply.ok, JSON.stringify(frame).slice(0, 80)).to.equal(false);
      expect(!reply.ok && reply.error.code).to.equal(ErrorCode.PROTOCOL);
    }
    expect(await readdir(r.dir)).to.deep.equal([PARTIAL_DIR]);
  });

  it('a connection cut in the middle of a folder: batches are put again, every file arrives once, intact', async () => {
    const r = await startReceiver();
    const proxy = new FaultProxy(r.address().port, { cutAfterBytes: 300 * 1024 });
    await proxy.start();
    track(() => proxy.close());
    const src = await tmpDir('relay-src-');
    const files = await smallTree(src, 'cut', 600, 3000);
    const res = await send([path.join(src, 'cut')], [proxy.url]);
    expect(res.ok, JSON.stringify(res.failed[0])).to.equal(true);
    expect(proxy.cutsDone).to.equal(1);
    expect(res.received).to.have.length(600);
    expect(new Set(res.received.map((e) => e.name)).size).to.equal(600);
    for (const f of files) expect(await sha256File(path.join(r.dir, path.relative(src, f.path)))).to.equal(f.sha256);
    expect(await partialEntries(r.dir)).to.deep.equal([]);
  });
});
