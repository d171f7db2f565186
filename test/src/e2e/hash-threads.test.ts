/**
 * The receiver's sha256 digests on worker threads (FileHasher): files are verified the same with threads
 * and without, and the receiver's close() ends its threads.
 */
import { readdirSync } from 'node:fs';
import { expect } from 'chai';
import { closeAll, eventually, MiB, randomFile, send, sha256File, startReceiver, tmpDir } from '../support/util.js';

const threadCount = (): number => readdirSync('/proc/self/task').length;

describe('receiver hash threads', () => {
  afterEach(closeAll);

  it('with a thread, big and small files arrive verified; close() ends the thread (none leaked)', async () => {
    const src = await tmpDir();
    const files = [await randomFile(src, 5 * MiB + 123, 'big.bin'), await randomFile(src, 4096, 'small.bin')];
    const before = threadCount();
    const r = await startReceiver({ hashThreads: 1 });
    const url = `http://127.0.0.1:${r.address().port}`;
    const result = await send(files.map((f) => f.path), [url]);
    expect(result.ok, JSON.stringify(result.failed)).to.equal(true);
    for (const [i, f] of files.entries()) expect(await sha256File(`${r.dir}/${['big.bin', 'small.bin'][i]}`)).to.equal(f.sha256);
    expect(threadCount()).to.be.above(before);
    await r.close();
    await eventually(() => threadCount() <= before, 'the hash thread to exit');
  });

  it('with 0 threads, files are hashed on the main thread and arrive verified, without starting a thread', async () => {
    const src = await tmpDir();
    const file = await randomFile(src, 3 * MiB, 'big.bin');
    const before = threadCount();
    const r = await startReceiver({ hashThreads: 0 });
    const result = await send([file.path], [`http://127.0.0.1:${r.address().port}`]);
    expect(result.ok, JSON.stringify(result.failed)).to.equal(true);
    expect(await sha256File(`${r.dir}/big.bin`)).to.equal(file.sha256);
    expect(threadCount()).to.equal(before);
  });
});
