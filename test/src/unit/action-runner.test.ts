/**
 * The receiver's node actions, run for real: executables in a temp folder, started by ActionRunner as a
 * receiver would start them. What counts as an action, what its environment holds, how its result and
 * output come back, the timeout that kills its whole group, and one run at a time per action.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { ActionRunner, harmless, OUTPUT_TAIL_BYTES, Tail } from '@relayer/agent-receiver';
import { ErrorCode, MAX_ACTION_OUTPUT, type ActionResult } from '@relayer/common';
import { captureLogger, closeAll, eventually, expectRejectsCode, testLogger, tmpDir, track } from '../support/util.js';

/** Whether a process is alive (signal 0 checks without sending anything). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('node actions (ActionRunner)', () => {
  let dir: string;
  let root: string;
  let runs: ActionResult[];

  async function action(name: string, script: string, mode = 0o755): Promise<string> {
    const file = path.join(dir, name);
    await writeFile(file, `#!/bin/sh\n${script}\n`);
    await chmod(file, mode);
    return file;
  }

  function runner(log = testLogger()): ActionRunner {
    const r = new ActionRunner({ dir, root, log, onRun: (x) => void runs.push(x) });
    track(() => r.close());
    return r;
  }

  beforeEach(async () => {
    const base = await tmpDir();
    dir = path.join(base, 'actions');
    root = path.join(base, 'inbox');
    await mkdir(dir);
    await mkdir(root);
    runs = [];
  });
  afterEach(closeAll);

  describe('what is an action', () => {
    it('an executable file is one, named after the file; names() lists only those, sorted', async () => {
      await action('deploy', 'exit 0');
      await action('b-restart', 'exit 0');
      await action('not-exec', 'exit 0', 0o644);
      await mkdir(path.join(dir, 'a-folder'));
      await writeFile(path.join(root, 'sent.sh'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      await symlink(path.join(root, 'sent.sh'), path.join(dir, 'link-to-sent'));
      const r = runner();
      expect(await r.names()).to.deep.equal(['b-restart', 'deploy']);
      expect(await r.has('deploy')).to.equal(true);
      for (const n of ['not-exec', 'a-folder', 'link-to-sent', 'missing']) expect(await r.has(n), n).to.equal(false);
    });

    it('a name with a path, dots or a hidden segment is never looked up', async () => {
      await action('deploy', 'exit 0');
      const r = runner();
      for (const n of ['../actions/deploy', './deploy', 'sub/deploy', '.deploy', '..', '', 'deploy\n']) expect(await r.has(n), JSON.stringify(n)).to.equal(false);
    });

    it('a receiver with no action folder defines none: a run is NO_ACTION', async () => {
      const r = new ActionRunner({ dir: undefined, log: testLogger() });
      track(() => r.close());
      expect(await r.names()).to.deep.equal([]);
      await expectRejectsCode(r.run('deploy', {}, { timeoutMs: 5000 }), ErrorCode.NO_ACTION);
    });

    it('an action removed before its run is NO_ACTION, not a crash', async () => {
      const r = runner();
      await expectRejectsCode(r.run('gone', { RELAY_NODE: 'n1' }, { timeoutMs: 5000 }), ErrorCode.NO_ACTION);
      expect(runs).to.have.length(0);
    });
  });

  describe('a run', () => {
    it('a clean environment: the RELAY_* values given, a fixed PATH; never RELAY_TOKEN nor the receiver\'s own variables', async () => {
      process.env.RELAYER_TEST_SECRET = 'from-the-receiver';
      try {
        await action('env', 'env | sort');
        const r = await runner().run('env', { RELAY_NODE: 'n1', RELAY_RELEASE_ID: 'x', RELAY_TOKEN: 'leak', OTHER: 'no' }, { timeoutMs: 5000 });
        expect(r.ok).to.equal(true);
        const vars = new Map(r.output.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
        expect(vars.get('RELAY_NODE')).to.equal('n1');
        expect(vars.get('RELAY_RELEASE_ID')).to.equal('x');
        expect(vars.get('PATH')).to.equal('/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
        expect(vars.has('RELAY_TOKEN')).to.equal(false);
        expect(vars.has('OTHER')).to.equal(false);
        expect(vars.has('RELAYER_TEST_SECRET')).to.equal(false);
        expect(r.output).not.to.include('leak');
      } finally {
        delete process.env.RELAYER_TEST_SECRET;
      }
    });

    it('no shell reads what it is given: a value with shell syntax arrives as text', async () => {
      const marker = path.join(root, 'pwned');
      await action('echo', 'printf "%s" "$RELAY_FILE_PATH"');
      const value = `x; touch ${marker}; $(touch ${marker})`;
      const r = await runner().run('echo', { RELAY_FILE_PATH: value }, { timeoutMs: 5000 });
      expect(r.output).to.equal(value);
      expect(existsSync(marker)).to.equal(false);
    });

    it('exit status, output of stdout and stderr, duration; onRun and one log line with node, name, status', async () => {
      await action('fails', 'echo out; echo err >&2; exit 3');
      const cap = captureLogger('info');
      const r = await runner(cap.logger).run('fails', { RELAY_NODE: 'pi1' }, { timeoutMs: 5000 });
      expect(r).to.include({ name: 'fails', ok: false, exitCode: 3, signal: null, timedOut: false });
      expect(r.output).to.include('out').and.to.include('err');
      expect(r.durationMs).to.be.a('number').and.at.least(0);
      expect(runs).to.deep.equal([r]);
      const line = cap.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.action === 'fails');
      expect(line).to.include({ node: 'pi1', action: 'fails', status: 'exit 3' });
      expect(line).to.have.property('durationMs');
    });

    it('killed by a signal: not ok, the signal named, no exit code', async () => {
      await action('killed', 'kill -9 $$');
      const r = await runner().run('killed', {}, { timeoutMs: 5000 });
      expect(r).to.include({ ok: false, exitCode: null, signal: 'SIGKILL', timedOut: false });
    });

    it('at the timeout the whole process group is killed, children that ignore SIGTERM included', async () => {
      const pids = path.join(root, 'pids');
      await action('hangs', `trap '' TERM; sleep 300 & echo $! > ${pids}; echo started; wait`);
      const r = await runner().run('hangs', {}, { timeoutMs: 500 });
      expect(r).to.include({ ok: false, timedOut: true });
      expect(r.output).to.include('started').and.to.include('timed out after 500 ms');
      const child = Number((await readFile(pids, 'utf8')).trim());
      expect(child).to.be.greaterThan(1);
      await eventually(() => !alive(child), `the action's child ${child} killed`);
    });

    it('after a normal exit, what the action started in the background is left running (a service it restarts)', async () => {
      const pids = path.join(root, 'bg');
      await action('starts', `sleep 300 >/dev/null 2>&1 </dev/null & echo $! > ${pids}; exit 0`);
      const r = await runner().run('starts', {}, { timeoutMs: 5000 });
      expect(r.ok).to.equal(true);
      const bg = Number((await readFile(pids, 'utf8')).trim());
      try {
        expect(alive(bg)).to.equal(true);
      } finally {
        try { process.kill(bg, 'SIGKILL'); } catch { /* gone */ }
      }
    });

    it('one run at a time per action: two runs of one action never overlap; another action is not held up', async () => {
      const log = path.join(root, 'log');
      const gate = path.join(root, 'gate');
      // `slow` holds until the gate file exists, so the second run is provably queued behind the first.
      await action('slow', `echo "start $RELAY_RELEASE_ID" >> ${log}; n=0; while [ ! -e ${gate} ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done; echo "end $RELAY_RELEASE_ID" >> ${log}`);
      await action('other', 'exit 0');
      const r = runner();
      const first = r.run('slow', { RELAY_RELEASE_ID: 'a' }, { timeoutMs: 20_000 });
      const second = r.run('slow', { RELAY_RELEASE_ID: 'b' }, { timeoutMs: 20_000 });
      await eventually(async () => (await readFile(log, 'utf8').catch(() => '')).includes('start a'), 'the first run started');
      // Another action runs while `slow` is held.
      expect((await r.run('other', {}, { timeoutMs: 5000 })).ok).to.equal(true);
      expect(await readFile(log, 'utf8')).to.equal('start a\n');
      await writeFile(gate, '');
      expect((await first).ok && (await second).ok).to.equal(true);
      expect((await readFile(log, 'utf8')).trim().split('\n')).to.deep.equal(['start a', 'end a', 'start b', 'end b']);
    });

    it('a failed run does not block the next run of that action', async () => {
      await action('flaky', 'test -e "$RELAY_FILE_PATH"');
      const r = runner();
      const [a, b] = await Promise.all([
        r.run('flaky', { RELAY_FILE_PATH: '/nonexistent' }, { timeoutMs: 5000 }),
        r.run('flaky', { RELAY_FILE_PATH: '/' }, { timeoutMs: 5000 }),
      ]);
      expect([a.ok, b.ok]).to.deep.equal([false, true]);
    });

    it('close() kills a running action (its run ends failed) and refuses new runs', async () => {
      const pids = path.join(root, 'pid');
      await action('long', `echo $$ > ${pids}; sleep 300`);
      const r = new ActionRunner({ dir, root, log: testLogger() });
      const run = r.run('long', {}, { timeoutMs: 60_000 });
      await eventually(async () => (await readFile(pids, 'utf8').catch(() => '')).trim() !== '', 'the action started');
      await r.close();
      const res = await run;
      expect(res.ok).to.equal(false);
      expect(alive(Number((await readFile(pids, 'utf8')).trim()))).to.equal(false);
      await expectRejectsCode(r.run('long', {}, { timeoutMs: 1000 }), ErrorCode.DISCONNECTED);
    });
  });

  describe('output', () => {
    it('the tail only, bounded, marked with "…" when cut', () => {
      const t = new Tail(OUTPUT_TAIL_BYTES);
      for (let i = 0; i < 100; i++) t.push(Buffer.from(`${String(i).padStart(4, '0')} ${'x'.repeat(995)}\n`));
      const text = t.text();
      expect(text.startsWith('…')).to.equal(true);
      expect(text.length).to.be.at.most(MAX_ACTION_OUTPUT);
      expect(text).to.include('0099 ');
      expect(text).not.to.include('0000 ');
    });

    it('short output comes back whole, without a mark', () => {
      const t = new Tail(OUTPUT_TAIL_BYTES);
      t.push(Buffer.from('done\n'));
      expect(t.text()).to.equal('done\n');
    });

    it('control characters are made harmless; newlines and tabs kept', () => {
      expect(harmless('a\u001b[31mred\r\u0000\u202eb\tc\n')).to.equal('a\\x1b[31mred\\x0d\\x00\\x202eb\tc\n');
    });
  });
});
