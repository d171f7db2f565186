/**
 * One file to several receivers: each gets its own transfer (its own pace, resume and outcome), but the
 * sender hashes the file once for all of them, whatever each receiver already holds.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import pLimit from 'p-limit';
import { FileHasher } from '@relayer/common/file-hasher';
import { runJob, SharedHashes, type JobEvent } from '@relayer/agent-sender';
import { closeAll, connectedLink, MiB, partialEntries, randomFile, sha256File, startReceiver, testLogger, tmpDir, track } from '../support/util.js';

for (const threads of [0, 1]) describe(`fan-out: one file, several receivers, one sha256 on the sender (${threads ? 'on a hash thread' : 'on the main thread'})`, () => {
  afterEach(closeAll);

  function sharedHashes(): SharedHashes {
    const hasher = new FileHasher({ threads });
    track(() => hasher.close());
    return new SharedHashes({ hasher });
  }

  it('delivers to three receivers, each holding something else, and hashes the file once', async function () {
    this.slow(5_000);
    const [fresh, stale, same] = [await startReceiver(), await startReceiver(), await startReceiver()];
    const f = await randomFile(await tmpDir(), 6 * MiB + 123);
    const name = path.basename(f.path);
    // `stale` holds another file of the same size (it must ask, then take every byte); `same` holds these bytes.
    await writeFile(path.join(stale.dir, name), randomBytes(f.size));
    await copyFile(f.path, path.join(same.dir, name));
    const targets = await Promise.all([fresh, stale, same].map((r) => connectedLink(r.url)));
    const hashes = sharedHashes();
    const events: JobEvent[] = [];
    const ok = await runJob(
      { files: [{ file: f.path, name, size: f.size }], targets, transfer: { chunkSize: MiB, window: 4 } },
      { limit: pLimit(4), logger: testLogger('sender'), hashes },
      (e) => events.push(e),
    );
    expect(ok, JSON.stringify(events.filter((e) => e.type === 'failed'))).to.equal(true);
    const received = events.filter((e): e is Extract<JobEvent, { type: 'received' }> => e.type === 'received');
    expect(received.map((e) => [e.target, e.unchanged, e.bytesSent]).sort()).to.deep.equal(
      [[fresh.url, false, f.size], [stale.url, false, f.size], [same.url, true, 0]].sort(),
    );
    for (const r of [fresh, stale, same]) {
      expect(await sha256File(path.join(r.dir, name))).to.equal(f.sha256);
      expect(await partialEntries(r.dir)).to.deep.equal([]);
    }
    expect(received.every((e) => e.sha256 === f.sha256)).to.equal(true);
    expect(hashes.hashedBytes, 'bytes hashed on the sender').to.equal(f.size);
    expect(hashes.size, 'hashes still held after the job').to.equal(0);
  });

  it('starts each of several big files on every target together, so each is still hashed once', async function () {
    this.slow(5_000);
    const receivers = [await startReceiver(), await startReceiver()];
    const dir = await tmpDir();
    // More files than the shared limit lets run at once: a target served in full before the other
    // would re-hash every file once its first transfer had let go of the hash.
    const files = await Promise.all(Array.from({ length: 6 }, () => randomFile(dir, 2 * MiB + 17)));
    const targets = await Promise.all(receivers.map((r) => connectedLink(r.url)));
    const hashes = sharedHashes();
    const events: JobEvent[] = [];
    const ok = await runJob(
      { files: files.map((f) => ({ file: f.path, name: path.basename(f.path), size: f.size })), targets, transfer: { chunkSize: MiB, window: 2 } },
      { limit: pLimit(2), logger: testLogger('sender'), hashes },
      (e) => events.push(e),
    );
    expect(ok, JSON.stringify(events.filter((e) => e.type === 'failed'))).to.equal(true);
    for (const r of receivers) for (const f of files) expect(await sha256File(path.join(r.dir, path.basename(f.path)))).to.equal(f.sha256);
    expect(hashes.hashedBytes, 'bytes hashed on the sender').to.equal(files.reduce((n, f) => n + f.size, 0));
  });
});
