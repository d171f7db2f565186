import { createHash, randomBytes } from 'node:crypto';
import { stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { ErrorCode, RelayError } from '@relayer/common';
import { FaultProxy } from '../support/proxy.js';
import {
  captureLogger, chunkOf, closeAll, commitFile, connectedLink, MiB, partialEntries, randomFile, send, sha256File, startReceiver,
  tmpDir, track, type SendResult,
} from '../support/util.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Rejects with a clear message when p has not settled within ms (a livelock bound, not a timing assertion). */
function settleWithin<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms}ms`)), ms);
  });
  return Promise.race([p, bound]).finally(() => clearTimeout(timer));
}

describe('contention: several senders, one name', () => {
  afterEach(closeAll);

  it('a takeover while the first connection has chunks in flight never hashes a byte twice (10 rounds)', async function () {
    this.slow(10_000);
    const r = await startReceiver();
    const bytes = randomBytes(8 * MiB);
    const digest = sha(bytes);
    const size = bytes.length;
    for (let round = 0; round < 10; round++) {
      const name = `race-${round}.bin`;
      const at = `round ${round}`;
      const linkA = await connectedLink(r.url, { name: `A${round}` });
      const linkB = await connectedLink(r.url, { name: `B${round}` });
      const a = await linkA.request('offer', { name, size, mtimeMs: 1000 + round }, 5000);
      expect(a.offset, at).to.equal(0);
      // Six chunks on the wire, none awaited, then B's offer right behind them on another connection.
      const inflight = [];
      for (let i = 0; i < 6; i++) {
        inflight.push(linkA.request('chunk', chunkOf(a.lease, i * MiB, bytes.subarray(i * MiB, (i + 1) * MiB)), 10_000));
      }
      const settled = Promise.allSettled(inflight); // handles A's refusals as they come
      const b = await linkB.request('offer', { name, size, mtimeMs: 1000 + round }, 10_000);
      const results = await settled;

      // A's chunks taken before the takeover are a prefix; every later one is refused UNKNOWN_TRANSFER.
      let taken = 0;
      results.forEach((res, i) => {
        if (res.status === 'fulfilled') {
          expect(i, `${at}: chunk ${i} taken after a refused one`).to.equal(taken);
          expect(res.value.offset, `${at}: ack of chunk ${i}`).to.be.at.least((i + 1) * MiB);
          taken++;
        } else {
          expect(res.reason, `${at}: ${String(res.reason)}`).to.be.instanceOf(RelayError);
          expect((res.reason as RelayError).code, at).to.equal(ErrorCode.UNKNOWN_TRANSFER);
        }
      });
      const ackedToA = Math.max(0, ...results.map((res) => (res.status === 'fulfilled' ? res.value.offset : 0)));
      // B continues from exactly the bytes the receiver holds: everything A had acked, nothing more.
      expect(b.offset, at).to.equal(taken * MiB);
      expect(b.offset, at).to.equal(ackedToA);
      if (b.offset > 0) expect(b.prefixSha256, at).to.equal(sha(bytes.subarray(0, b.offset)));

      for (let off = b.offset; off < size; off += MiB) {
        const ack = await linkB.request('chunk', chunkOf(b.lease, off, bytes.subarray(off, off + MiB)), 10_000);
        expect(ack.offset, at).to.equal(off + MiB);
      }
      const done = await commitFile(linkB, { lease: b.lease, sha256: digest }, 10_000);
      expect(done.sha256, at).to.equal(digest);
      expect(await sha256File(path.join(r.dir, name)), at).to.equal(digest);
      linkA.close();
      linkB.close();
    }
    expect(await partialEntries(r.dir)).to.deep.equal([]);
  });

  it('a second send of the same file started mid-way through the first: both are confirmed and the file is intact', async function () {
    this.slow(10_000);
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 16 * MiB + 11);
    let second: Promise<SendResult> | undefined;
    const first = await send([f.path], [r.url], {
      as: 'twice.bin',
      transfer: { chunkSize: MiB, window: 4, bwlimit: 8 * MiB },
      onEvent: (e) => {
        if (e.type === 'progress' && e.acked >= 2 * MiB && !second) {
          second = send([f.path], [r.url], { as: 'twice.bin', transfer: { chunkSize: MiB, window: 4 } });
        }
      },
    });
    expect(second, 'the first send never reached 2 MiB acked').to.not.equal(undefined);
    const other = await second!;
    for (const [label, res] of [['first', first], ['second', other]] as const) {
      expect(res.ok, `${label}: ${JSON.stringify(res.failed)}`).to.equal(true);
      expect(res.received[0]!.sha256, label).to.equal(f.sha256);
    }
    expect(await sha256File(path.join(r.dir, 'twice.bin'))).to.equal(f.sha256);
    expect(await partialEntries(r.dir)).to.deep.equal([]);
  });

  /** Sends a ~12 MiB file through a proxy that flips one byte of chunk data on the first connection. */
  async function sendWithFlippedByte(bwlimit: number): Promise<void> {
    const cap = captureLogger('info');
    const r = await startReceiver({ logger: cap.logger });
    // Past the handshake, the offer and five 1 MiB chunk frames (each ~100 bytes of framing): chunk data.
    const corruptAtByte = 5 * MiB + 12345;
    const proxy = new FaultProxy(r.address().port, { corruptAtByte });
    await proxy.start();
    track(() => proxy.close());
    const f = await randomFile(await tmpDir(), 12 * MiB + 77);
    const chunkSize = MiB;
    const window = 4;
    const res = await send([f.path], [proxy.url], { as: 'flip.bin', transfer: { chunkSize, window, bwlimit } });

    expect(proxy.corruptionsDone).to.equal(1);
    expect(res.failed, JSON.stringify(res.failed)).to.be.empty;
    expect(res.ok).to.equal(true);
    expect(proxy.connections, 'the corrupt chunk was re-sent after a reconnect, not a rewind').to.equal(1);
    expect(cap.text()).to.include('chunk crc32 mismatch');
    const c = res.received[0]!;
    expect(c.sha256).to.equal(f.sha256);
    expect(await sha256File(path.join(r.dir, 'flip.bin'))).to.equal(f.sha256);
    expect(c.bytesSent).to.be.above(f.size);
    expect(c.bytesSent - f.size).to.be.at.most(window * chunkSize);
    expect(await partialEntries(r.dir)).to.deep.equal([]);
  }

  // Regression: a rewind landing while a chunk was read or paced used to send that chunk's bytes under the
  // rewound offset; its crc matched what was sent, so wrong bytes were accepted and the commit failed.
  it('a byte corrupted on the wire is caught by the chunk crc32 and re-sent on the same connection', async () => {
    await sendWithFlippedByte(0);
  });

  it('a byte corrupted on the wire is re-sent on the same connection when the send is paced (bwlimit)', async () => {
    await sendWithFlippedByte(16 * MiB);
  });

  it('two different versions sent to one name at once: the later one wins, the earlier fails SUPERSEDED (no livelock)', async function () {
    this.slow(10_000);
    const r = await startReceiver();
    const dir = await tmpDir();
    const v1 = await randomFile(dir, 16 * MiB, 'v1.bin');
    const v2 = await randomFile(dir, 16 * MiB, 'v2.bin');
    await utimes(v1.path, new Date('2020-01-01T00:00:00Z'), new Date('2020-01-01T00:00:00Z'));
    await utimes(v2.path, new Date('2020-01-02T00:00:00Z'), new Date('2020-01-02T00:00:00Z'));
    expect((await stat(v1.path)).mtimeMs).to.not.equal((await stat(v2.path)).mtimeMs);
    // Whatever happens, nothing keeps sending after the test.
    const stop = new AbortController();
    track(() => stop.abort());

    let b: Promise<SendResult> | undefined;
    const a = send([v1.path], [r.url], {
      as: 'ver.bin',
      signal: stop.signal,
      transfer: { chunkSize: MiB, window: 4, bwlimit: 8 * MiB },
      onEvent: (e) => {
        if (e.type === 'progress' && e.acked >= 2 * MiB && !b) {
          b = send([v2.path], [r.url], { as: 'ver.bin', signal: stop.signal, transfer: { chunkSize: MiB, window: 4 } });
        }
      },
    });
    const resA = await settleWithin(a, 30_000, 'the send of v1');
    expect(b, 'the v1 send never reached 2 MiB acked').to.not.equal(undefined);
    const resB = await settleWithin(b!, 30_000, 'the send of v2');

    expect(resB.ok, JSON.stringify(resB.failed)).to.equal(true);
    expect(resB.received[0]!.sha256).to.equal(v2.sha256);
    expect(resA.ok).to.equal(false);
    expect(resA.received, JSON.stringify(resA.received)).to.be.empty;
    expect(resA.failed.map((e) => e.code)).to.deep.equal([ErrorCode.SUPERSEDED]);
    expect(await sha256File(path.join(r.dir, 'ver.bin'))).to.equal(v2.sha256);
    expect(await partialEntries(r.dir)).to.deep.equal([]);
  });
});
