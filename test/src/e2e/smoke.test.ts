import { expect } from 'chai';
import { closeAll, randomFile, send, sha256File, startReceiver, tmpDir } from '../support/util.js';
import path from 'node:path';

describe('smoke: direct send over loopback', () => {
  afterEach(closeAll);

  it('delivers a 3 MiB file byte-identical and confirms it', async () => {
    const r = await startReceiver();
    const f = await randomFile(await tmpDir(), 3 * 1024 * 1024 + 17);
    const res = await send([f.path], [r.url]);
    expect(res.ok).to.equal(true);
    expect(res.received).to.have.length(1);
    expect(res.received[0]!.sha256).to.equal(f.sha256);
    expect(await sha256File(path.join(r.dir, path.basename(f.path)))).to.equal(f.sha256);
  });
});
