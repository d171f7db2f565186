/**
 * Issue 7 finding 8 / issue 9: a sender that ignores the window cannot grow the receiver process beyond what
 * its defaults allow. Measured on the real bin with the kernel's peak RSS (VmHWM), not on in-process counters.
 */
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { expect } from 'chai';
import { MAX_CHUNK_SIZE } from '@relayer/common';
import { RECEIVER_DEFAULTS } from '@relayer/agent-receiver';
import {
  chunkOf, closeAll, MiB, procMemory, randomFile, rawClient, send, sha256File, startReceiverProcess, tmpDir,
} from '../support/util.js';

/**
 * What the process may hold beyond the chunk bytes it keeps on purpose. V8 scavenges young ArrayBuffers only
 * once they reach twice its 16 MiB semi-space, so up to 32 MiB of dead socket reads and ws message copies
 * linger, and malloc keeps freed memory it may reuse. Measured: a flood of 256 KiB chunks with a 1 MiB budget
 * (~1 MiB live) still grows peak RSS by 38-45 MiB.
 */
const GC_ALLOWANCE = 56 * MiB;

describe('memory: the receiver process stays bounded whatever a sender does', () => {
  afterEach(closeAll);

  it('a flood of largest chunks sent without waiting for acks grows peak RSS by at most budget + 2 chunks + GC allowance; a normal send works after', async function () {
    this.timeout(180_000);
    this.slow(30_000);
    // The default budget, given explicitly so the bound below is this budget's whatever the defaults become.
    const budget = 4 * MiB;
    expect(RECEIVER_DEFAULTS.maxBufferedBytesPerConnection).to.be.at.most(budget);
    const r = await startReceiverProcess({ dir: await tmpDir(), args: ['--max-buffered', String(budget)] });
    const client = await rawClient(r.url);
    const chunk = randomBytes(MAX_CHUNK_SIZE);
    const n = Math.ceil((256 * MiB) / chunk.length);
    const offer = await client.request<{ lease: string }>('offer', { name: 'flood.bin', size: n * chunk.length, mtimeMs: 1 });
    if (!offer.ok) throw new Error(`offer refused: ${JSON.stringify(offer.error)}`);
    const before = await procMemory(r.pid);

    // All n chunks are handed to the socket at once: the receiver alone decides how much of them it holds.
    const acks = await Promise.all(Array.from({ length: n }, (_, i) => client.request('chunk', chunkOf(offer.lease, i * chunk.length, chunk), 120_000)));
    expect(acks.filter((a) => !a.ok), JSON.stringify(acks.find((a) => !a.ok))).to.deep.equal([]);
    const after = await procMemory(r.pid);

    // Live: the budget, the chunk that crossed it, and the next message inside ws (its reads, then its copy).
    const bound = budget + 2 * MAX_CHUNK_SIZE + GC_ALLOWANCE;
    const growth = after.peakRss - before.rss;
    expect(growth, `peak RSS ${(after.peakRss / MiB).toFixed(0)} MiB, grew ${(growth / MiB).toFixed(0)} MiB, bound ${(bound / MiB).toFixed(0)} MiB`).to.be.at.most(bound);

    // Nothing was lost: the flooded file commits with the right hash...
    const sha = createHash('sha256');
    for (let i = 0; i < n; i++) sha.update(chunk);
    const digest = sha.digest('hex');
    const done = await client.request('commit', { lease: offer.lease, sha256: digest }, 60_000);
    if (!done.ok) throw new Error(`commit refused: ${JSON.stringify(done.error)}`);
    // Its confirmation came before the ack, as a "received" event.
    const [confirmed] = client.received.at(-1) as Array<{ lease: string; path: string }>;
    expect(confirmed!.lease).to.equal(offer.lease);
    expect(path.basename(confirmed!.path)).to.equal('flood.bin');
    expect(await sha256File(confirmed!.path)).to.equal(digest);
    // ...and the receiver still serves a normal send.
    const f = await randomFile(await tmpDir(), 20 * MiB, 'after.bin');
    const res = await send([f.path], [r.url], { as: 'after.bin' });
    expect(res.failed, JSON.stringify(res.failed)).to.be.empty;
    expect(res.received.map((x) => x.sha256)).to.deep.equal([f.sha256]);
  });
});
