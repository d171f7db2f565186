/** runJob's lifecycle beyond the happy path: what a cancelled job does with the files it has not reached. */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import pLimit from 'p-limit';
import { ErrorCode } from '@relayer/common';
import { runJob, SmallFileReader, type JobEvent, type SourceFile } from '@relayer/agent-sender';
import { closeAll, connectedLink, startReceiver, testLogger, tmpDir, track } from '../support/util.js';

/** A reader that counts the files it was asked to read. */
class CountingReader extends SmallFileReader {
  asked = 0;
  override read(files: readonly SourceFile[], max: number): ReturnType<SmallFileReader['read']> {
    this.asked += files.length;
    return super.read(files, max);
  }
}

describe('runJob: a cancelled job', () => {
  afterEach(closeAll);

  it('fails every file not yet sent with CANCELLED, for every target, without reading the rest', async () => {
    const receivers = [await startReceiver(), await startReceiver()];
    const dir = await tmpDir();
    const files: SourceFile[] = [];
    for (let i = 0; i < 300; i++) {
      const file = path.join(dir, `f${i}.txt`);
      await writeFile(file, `file ${i}\n`);
      files.push({ file, name: `job/f${i}.txt`, size: Buffer.byteLength(`file ${i}\n`) });
    }
    const targets = await Promise.all(receivers.map((r) => connectedLink(r.url)));
    const reader = new CountingReader();
    track(() => reader.close());
    const cancel = new AbortController();
    cancel.abort();
    const events: JobEvent[] = [];
    const ok = await runJob({ files, targets, transfer: {} }, { limit: pLimit(4), logger: testLogger('sender'), reader, signal: cancel.signal }, (e) => events.push(e));
    expect(ok).to.equal(false);
    const failed = events.filter((e): e is Extract<JobEvent, { type: 'failed' }> => e.type === 'failed');
    expect(failed).to.have.length(files.length * targets.length);
    expect(failed.every((e) => e.code === ErrorCode.CANCELLED)).to.equal(true);
    expect(events.some((e) => e.type === 'received')).to.equal(false);
    expect(events.at(-1)).to.include({ type: 'done', ok: false, confirmed: 0, failed: files.length * targets.length });
    expect(reader.asked, 'files read after the job was cancelled').to.equal(0);
  });
});
