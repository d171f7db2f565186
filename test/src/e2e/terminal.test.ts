import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { BIN, closeAll, MiB, randomFile, startReceiver, tmpDir, TOKEN } from '../support/util.js';
import { runOnTerminal } from '../support/terminal.js';

const env = { RELAY_TOKEN: TOKEN, RELAY_TOKEN_FILE: undefined, RELAY_SOCKET: undefined, NO_COLOR: '1' };

/** Rows that are a target's progress bar: its name, then the bar in brackets. */
function barRows(screen: string[], name: string): number[] {
  return screen.flatMap((row, i) => (row.startsWith(`${name} `) && /\[[█░]+\]/.test(row) ? [i] : []));
}

describe('relay send on a terminal: what a person reads at the end', function () {
  this.timeout(120_000);
  afterEach(closeAll);

  for (const cols of [80, 120]) {
    it(`at ${cols} columns: every confirmation whole with its path, one finished bar per target in header order, rate and time on screen`, async () => {
      const [a, b] = [await startReceiver(), await startReceiver()];
      const f = await randomFile(await tmpDir('relay-src-'), 24 * MiB, 'big.bin');
      // --bwlimit keeps the bars up for about a second, so results are printed while bars are drawn.
      const run = await runOnTerminal(BIN.relay, ['send', '--direct', '--to', `${a.url},${b.url}`, '--bwlimit', '20M', f.path], { cols, env });
      expect(run.code, run.lines.join('\n')).to.equal(0);
      for (const r of [a, b]) {
        const line = `received big.bin ${f.size} bytes sha256=${f.sha256} on ${r.url} → `;
        const found = run.lines.filter((l) => l.startsWith(line));
        expect(found, run.lines.join('\n')).to.have.length(1);
        expect(found[0]).to.contain(`:${path.join(r.dir, 'big.bin')} in `);
      }
      const [rowsA, rowsB] = [barRows(run.screen, a.url), barRows(run.screen, b.url)];
      expect(rowsA, run.screen.join('\n')).to.have.length(1);
      expect(rowsB, run.screen.join('\n')).to.have.length(1);
      expect(rowsA[0]! + 1).to.equal(rowsB[0]);
      for (const row of [run.screen[rowsA[0]!]!, run.screen[rowsB[0]!]!]) {
        expect(row).to.contain('100%').and.to.match(/MiB\/s/).and.to.contain('done in');
        expect(row.length).to.be.at.most(cols);
      }
      expect(run.lines.filter((l) => l.startsWith('done: 1 file on each of'))).to.have.length(1);
    });
  }

  it('a tree of 300 files to two receivers: progress by files per target and a line per target, not a line per file', async () => {
    const [a, b] = [await startReceiver(), await startReceiver()];
    const tree = path.join(await tmpDir('relay-src-'), 'site');
    await mkdir(tree);
    for (let i = 0; i < 300; i++) await writeFile(path.join(tree, `f${i}.txt`), `file ${i}\n`);
    const run = await runOnTerminal(BIN.relay, ['send', '--direct', '--to', `${a.url},${b.url}`, tree], { cols: 80, env });
    expect(run.code, run.lines.join('\n')).to.equal(0);
    expect(run.lines.filter((l) => l.startsWith('received '))).to.deep.equal([]);
    for (const r of [a, b]) {
      expect(barRows(run.screen, r.url)).to.have.length(1);
      expect(run.screen[barRows(run.screen, r.url)[0]!]).to.contain('300/300 files');
      const summary = run.lines.filter((l) => l.startsWith(`${r.url}: `));
      expect(summary, run.lines.join('\n')).to.have.length(1);
      expect(summary[0]).to.match(/: 300 files confirmed \(.+\) → /).and.to.match(new RegExp(`:${path.join(r.dir, 'site')}$`));
    }
    expect(run.lines).to.satisfy((ls: string[]) => ls.some((l) => /^done: 300 files on each of .* \(600 confirmed\)/.test(l)));
    const verbose = await runOnTerminal(BIN.relay, ['send', '--direct', '--to', a.url, tree, '--verbose'], { cols: 80, env });
    expect(verbose.lines.filter((l) => l.startsWith('received '))).to.have.length(300);
  });

  it('a receiver that is down shows as waiting, and its failure points at relay status', async () => {
    const a = await startReceiver();
    const f = await randomFile(await tmpDir('relay-src-'), 2 * MiB, 'x.bin');
    const down = 'http://127.0.0.1:9';
    const run = await runOnTerminal(BIN.relay, ['send', '--direct', '--to', `${a.url},${down}`, '--timeout', '4s', f.path], { cols: 120, env });
    expect(run.code).to.equal(1);
    expect(run.raw).to.match(/127\.0\.0\.1:9 +waiting, disconnected for \d/);
    const failed = run.lines.find((l) => l.startsWith(`FAILED x.bin to ${down}: UNREACHABLE: `));
    expect(failed, run.lines.join('\n')).to.contain('connection refused').and.to.contain("(see 'relay status')");
    expect(barRows(run.screen, a.url)).to.have.length(1);
    expect(run.screen.filter((row) => row.startsWith(`${down} `))).to.have.length(1);
  });

  it('stdout alone holds every confirmation and the summary; the terminal keeps the bars', async () => {
    const [a, b] = [await startReceiver(), await startReceiver()];
    const f = await randomFile(await tmpDir('relay-src-'), 8 * MiB, 'out.bin');
    const log = path.join(await tmpDir('relay-out-'), 'log');
    const run = await runOnTerminal(BIN.relay, ['send', '--direct', '--to', `${a.url},${b.url}`, '--bwlimit', '20M', f.path], { cols: 100, env, stdoutTo: log });
    expect(run.code).to.equal(0);
    const out = (await readFile(log, 'utf8')).split('\n');
    for (const r of [a, b]) expect(out.filter((l) => l.startsWith(`received out.bin ${f.size} bytes sha256=${f.sha256} on ${r.url} → `))).to.have.length(1);
    expect(out.filter((l) => l.startsWith('done: 1 file on each of'))).to.have.length(1);
    expect(out.join('\n')).to.not.match(/\x1b|█/);
    expect(run.lines.filter((l) => l.startsWith('received '))).to.deep.equal([]);
    expect(barRows(run.screen, a.url)).to.have.length(1);
    expect(barRows(run.screen, b.url)).to.have.length(1);
  });
});
