import { mkdir, readdir, rename, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { Receiver } from '@relayer/agent-receiver';
import { ErrorCode, PARTIAL_DIR } from '@relayer/common';
import {
  captureLogger, closeAll, expectRejectsCode, MiB, publishedEntries, randomFile, send, startReceiver, testLogger, tmpDir, TOKEN, track,
} from '../support/util.js';

const TWO_DAYS_AGO = new Date(Date.now() - 2 * 24 * 3_600_000);

async function oldFile(file: string, content = 'x'): Promise<void> {
  await writeFile(file, content);
  await utimes(file, TWO_DAYS_AGO, TWO_DAYS_AGO);
}

function receiverFor(dir: string): Receiver {
  const r = new Receiver({ host: '127.0.0.1', port: 0, token: TOKEN, minFree: 0, dir, logger: testLogger('receiver'), partialTtlMs: 3_600_000 });
  track(() => r.close());
  return r;
}

describe('inbox guard: the receiver never follows a planted link, and sweeps only its own files', () => {
  afterEach(closeAll);

  it('refuses to start when .relay-partial is a symlink, and deletes nothing in its target', async () => {
    const inbox = await tmpDir('relay-inbox-');
    const victim = await tmpDir('relay-victim-');
    await oldFile(path.join(victim, 'settings.json'), 'precious');
    await oldFile(path.join(victim, 'backup.part'), 'precious');
    await symlink(victim, path.join(inbox, PARTIAL_DIR));
    const err = await expectRejectsCode(receiverFor(inbox).start(), ErrorCode.USAGE);
    expect(err.message).to.contain(PARTIAL_DIR).and.to.contain('symlink');
    expect((await readdir(victim)).sort()).to.deep.equal(['backup.part', 'settings.json']);
  });

  it('refuses a --dir that passes through a symlink, naming the real path to give instead', async () => {
    const real = await tmpDir('relay-real-');
    const links = await tmpDir('relay-links-');
    await symlink(real, path.join(links, 'inbox-link'));
    const err = await expectRejectsCode(receiverFor(path.join(links, 'inbox-link', 'sub')).start(), ErrorCode.USAGE);
    expect(err.message).to.contain('symlink').and.to.contain(`--dir ${path.join(real, 'sub')}`);
  });

  for (const [how, swap] of [
    ['swapped for a symlink to the folder itself (moved away, its partial folder with it)', async (inbox: string, away: string) => {
      await rename(inbox, away);
      await symlink(away, inbox);
    }],
    ['swapped for a symlink to another, empty folder', async (inbox: string, away: string) => {
      await mkdir(away);
      await rename(inbox, `${inbox}.old`);
      await symlink(away, inbox);
    }],
  ] as const) {
    it(`a --dir ${how} while the receiver runs: INBOX_UNSAFE to the sender with no receiver path, the detail in the receiver's log, nothing written there`, async () => {
      const base = await tmpDir('relay-swap-');
      const inbox = path.join(base, 'in');
      const away = path.join(base, 'elsewhere');
      await mkdir(inbox);
      const log = captureLogger();
      const r = await startReceiver({ dir: inbox, logger: log.logger });
      const src = await tmpDir('relay-src-');
      // One file that goes in chunks (offer, commit) and one that travels whole (put).
      const big = await randomFile(src, 2 * MiB, 'big.bin');
      const small = await randomFile(src, 1000, 'small.bin');
      await swap(inbox, away);
      const res = await send([big.path, small.path], [r.url]);
      expect(res.ok).to.equal(false);
      expect(res.failed.map((e) => [e.name, e.code]).sort()).to.deep.equal([['big.bin', ErrorCode.INBOX_UNSAFE], ['small.bin', ErrorCode.INBOX_UNSAFE]]);
      for (const e of res.failed) {
        expect(e.message).to.not.contain(base);
        expect(e.message).to.not.contain('refusing to start');
      }
      expect(log.text()).to.contain('passes through a symlink').and.to.contain(inbox);
      expect(await publishedEntries(away)).to.deep.equal([]);
      expect(await readdir(path.join(away, PARTIAL_DIR)).catch(() => [])).to.deep.equal([]);
    });
  }

  it('the startup sweep removes old partials of its own naming and leaves every other file alone', async () => {
    const inbox = await tmpDir('relay-inbox-');
    const store = path.join(inbox, PARTIAL_DIR);
    await mkdir(store, { mode: 0o700 });
    const key = 'a'.repeat(40);
    await oldFile(path.join(store, `${key}.part`));
    await oldFile(path.join(store, `${key}.json`), '{}');
    for (const foreign of ['notes.json', 'keep.part', `${'b'.repeat(39)}.part`, `${'c'.repeat(40)}.part.bak`]) await oldFile(path.join(store, foreign));
    await (await startReceiver({ dir: inbox, partialTtlMs: 3_600_000 })).swept();
    expect((await readdir(store)).sort()).to.deep.equal([`${'b'.repeat(39)}.part`, `${'c'.repeat(40)}.part.bak`, 'keep.part', 'notes.json']);
  });
});
