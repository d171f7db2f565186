import path from 'node:path';
import { expect } from 'chai';
import type { JobEvent } from '@relayer/agent-sender';
import { startAgent } from '../support/agent.js';
import { closeAll, MiB, randomFile, send, sha256File, startReceiver, tmpDir, type RandomFile } from '../support/util.js';

/** The most files one target had started and not yet confirmed or failed, at any point of the event stream. */
function mostInFlight(events: JobEvent[], target: string): number {
  let open = 0;
  let most = 0;
  for (const e of events) {
    if (!('target' in e) || e.target !== target) continue;
    if (e.type === 'start') most = Math.max(most, ++open);
    else if (e.type === 'received' || e.type === 'failed') open--;
  }
  return most;
}

describe('files in flight: a job keeps several files in flight per receiver', function () {
  this.slow(10_000);
  afterEach(closeAll);

  it('delivers every file of a multi-file job byte-identical to each receiver, one confirmation each, never more than filesInFlight at once', async () => {
    const [a, b] = [await startReceiver(), await startReceiver()];
    const src = path.join(await tmpDir('relay-src-'), 'build');
    const files: RandomFile[] = [];
    // Mostly small files (one chunk, no shared slot) and a few over 1 MiB (they also take a slot of the shared limit).
    for (let i = 0; i < 40; i++) files.push(await randomFile(src, i % 10 === 9 ? 2 * MiB + i : 1 + i * 997, `f${String(i).padStart(2, '0')}.bin`));
    // Over Node's default of 10 listeners per emitter: a job this wide must not look like a leak on the
    // sender's links, on the job's signal, nor on the receivers' sessions (in this process too).
    const filesInFlight = 12;
    const job = new AbortController();
    const warnings: string[] = [];
    const onWarning = (w: Error & { emitter?: unknown }): void => {
      if (w.name === 'MaxListenersExceededWarning') warnings.push(w.message);
    };
    process.on('warning', onWarning);
    let res;
    try {
      res = await send([src], [a.url, b.url], { transfer: { filesInFlight, smallFileMax: 0 }, signal: job.signal });
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).to.deep.equal([]);

    expect(res.failed, JSON.stringify(res.failed)).to.deep.equal([]);
    expect(res.ok).to.equal(true);
    const done = res.events.find((e) => e.type === 'done');
    expect(done).to.include({ ok: true, confirmed: files.length * 2, failed: 0 });
    for (const r of [a, b]) {
      const mine = res.received.filter((c) => c.target === r.url);
      expect(mine.map((c) => c.name).sort()).to.deep.equal(files.map((f) => `build/${path.basename(f.path)}`));
      for (const f of files) {
        const c = mine.find((x) => x.name === `build/${path.basename(f.path)}`)!;
        expect(c).to.include({ size: f.size, sha256: f.sha256, path: path.join(r.dir, 'build', path.basename(f.path)) });
        expect(await sha256File(c.path)).to.equal(f.sha256);
      }
      // Several files were in flight to this receiver at once, and never more than asked for.
      expect(mostInFlight(res.events, r.url)).to.equal(filesInFlight);
    }
  });

  it('with filesInFlight 1 sends one file at a time per receiver and still delivers them all', async () => {
    const r = await startReceiver();
    const src = path.join(await tmpDir('relay-src-'), 'few');
    const files = [await randomFile(src, 10, 'a'), await randomFile(src, 5000, 'b'), await randomFile(src, 3 * MiB, 'c')];
    const res = await send([src], [r.url], { transfer: { filesInFlight: 1, smallFileMax: 0 } });
    expect(res.ok).to.equal(true);
    expect(mostInFlight(res.events, r.url)).to.equal(1);
    for (const f of files) expect(await sha256File(path.join(r.dir, 'few', path.basename(f.path)))).to.equal(f.sha256);
  });

  it('through the agent: relay send --files-in-flight confirms every file; out-of-bounds values exit 2', async () => {
    const r = await startReceiver();
    const src = await tmpDir('relay-src-');
    const dir = path.join(src, 'out');
    const files: RandomFile[] = [];
    for (let i = 0; i < 30; i++) files.push(await randomFile(dir, 4096, `f${i}.bin`));
    const agent = await startAgent({ receivers: { r: r.url }, allowRoots: [src] });

    const res = await agent.relay(['send', dir, '--to', 'r', '--files-in-flight', '8', '--small-max', '0', '--json']);
    expect(res.code, res.stderr).to.equal(0);
    const events = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as JobEvent);
    const received = events.filter((e) => e.type === 'received');
    expect(received.map((e) => e.name).sort()).to.deep.equal(files.map((f) => `out/${path.basename(f.path)}`).sort());
    expect(mostInFlight(events, 'r')).to.equal(8);
    for (const f of files) expect(await sha256File(path.join(r.dir, 'out', path.basename(f.path)))).to.equal(f.sha256);

    for (const bad of ['0', '65']) {
      const refused = await agent.relay(['send', dir, '--to', 'r', '--files-in-flight', bad]);
      expect(refused.code, refused.stderr).to.equal(2);
    }
  });
});
