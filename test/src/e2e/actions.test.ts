/**
 * Node actions (issue 19) end to end: real `relay` CLI processes (--direct and through a real relay-sender
 * agent), receivers in-process and as real `relay-receiver` processes, and real `#!/bin/sh` action files in
 * temp folders outside the receivers' --dir.
 */
import { EventEmitter } from 'node:events';
import { chmod, mkdir, readFile, readlink, realpath, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import type { JobEvent } from '@relayer/agent-sender';
import { startAgent } from '../support/agent.js';
import { count, sample, scrape } from '../support/metrics.js';
import { untilExit } from '../support/processes.js';
import {
  BIN, captureLogger, closeAll, eventually, publishedEntries, randomFile, runBin, spawnBin, startReceiver,
  startReceiverProcess, tmpDir, TOKEN, type CliResult, type TestReceiver,
} from '../support/util.js';

type ActionEvent = Extract<JobEvent, { type: 'action' }>;

/** The CLI's environment: no token, socket or log level inherited from the test run. */
const CLI_ENV = { RELAY_TOKEN: undefined, RELAY_TOKEN_FILE: undefined, RELAY_LOG_LEVEL: undefined, RELAY_SOCKET: undefined };

/** Writes an executable `#!/bin/sh` action `name` into dir. */
async function writeAction(dir: string, name: string, body: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
  return file;
}

/** A fresh folder of actions (outside every receiver's --dir: tmpDir makes sibling folders). */
async function actionDir(actions: Record<string, string>): Promise<string> {
  const dir = await tmpDir('relay-actions-');
  for (const [name, body] of Object.entries(actions)) await writeAction(dir, name, body);
  return dir;
}

function events(stdout: string): JobEvent[] {
  return stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as JobEvent);
}

function actionEvents(stdout: string): ActionEvent[] {
  return events(stdout).filter((e): e is ActionEvent => e.type === 'action');
}

/** KEY=VALUE lines of an action's output (as `env` prints them). */
function envLines(output: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of output.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0 && /^[A-Za-z_][A-Za-z0-9_]*$/.test(line.slice(0, at))) m.set(line.slice(0, at), line.slice(at + 1));
  }
  return m;
}

/** The lines the CLI printed under `target| `, without the prefix. */
function prefixed(stdout: string, target: string): string[] {
  return stdout.split('\n').filter((l) => l.startsWith(`${target}| `)).map((l) => l.slice(target.length + 2));
}

const ctx = (r: CliResult): string => `exit ${r.code ?? r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** Whether pid is gone (ESRCH); a zombie waiting for its reaper is dead too. */
async function gone(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return / Z /.test(stat.slice(stat.lastIndexOf(')')));
}

describe('node actions: relay send --then NAME (issue 19)', function () {
  this.timeout(60_000);
  afterEach(closeAll);

  let tokenFile: string;
  beforeEach(async () => {
    tokenFile = path.join(await tmpDir('relay-token-'), 'token');
    await writeFile(tokenFile, `${TOKEN}\n`);
  });

  /** `relay send --direct --token-file F <args>` (args carry --to URL ...). */
  const direct = (args: string[], timeoutMs = 60_000): Promise<CliResult> =>
    runBin(BIN.relay, ['send', '--direct', '--token-file', tokenFile, ...args], { env: CLI_ENV, timeoutMs });

  const ENV_ACTION = 'env | sort\necho "action-done"';

  describe('a plain send', () => {
    it('--direct: exit 0, the action sees the published file (path, size, sha256) and the node; its output under the target', async () => {
      const r = await startReceiver({ actionDir: await actionDir({ show: ENV_ACTION }), node: 'node-direct' });
      const f = await randomFile(await tmpDir('relay-src-'), 12_345, 'one.bin');
      const res = await direct(['--to', r.url, f.path, '--then', 'show']);
      expect(res.code, ctx(res)).to.equal(0);
      expect(res.stdout).to.match(new RegExp(`^action show on ${r.url}: exited 0 in \\S+`, 'm'));
      const out = prefixed(res.stdout, r.url);
      expect(out, res.stdout).to.include('action-done');
      const env = envLines(out.join('\n'));
      expect(env.get('RELAY_FILE_PATH')).to.equal(path.join(r.dir, 'one.bin'));
      expect(env.get('RELAY_FILE_SIZE')).to.equal(String(f.size));
      expect(env.get('RELAY_FILE_SHA256')).to.equal(f.sha256);
      expect(env.get('RELAY_FILES')).to.equal('1');
      expect(env.get('RELAY_NODE')).to.equal('node-direct');
      expect(env.get('RELAY_ACTION')).to.equal('show');
      // The action ran after the confirmation: the confirmation line comes first.
      const lines = res.stdout.split('\n');
      expect(lines.findIndex((l) => l.startsWith('received one.bin'))).to.be.within(0, lines.findIndex((l) => l.startsWith('action show')));
    });

    it('several files: RELAY_FILES is how many were sent (also past 1024 files), no single-file values', async () => {
      const r = await startReceiver({ actionDir: await actionDir({ show: ENV_ACTION }) });
      const src = await tmpDir('relay-src-');
      const tree = path.join(src, 'tree');
      await randomFile(tree, 10, 'a.bin');
      await randomFile(tree, 20, 'b/c.bin');
      const two = await direct(['--to', r.url, tree, '--then', 'show', '--json']);
      expect(two.code, ctx(two)).to.equal(0);
      const env2 = envLines(actionEvents(two.stdout)[0]!.output);
      expect(env2.get('RELAY_FILES')).to.equal('2');
      for (const k of ['RELAY_FILE_PATH', 'RELAY_FILE_SIZE', 'RELAY_FILE_SHA256']) expect(env2.has(k), k).to.equal(false);

      const many = path.join(src, 'many');
      for (let d = 0; d < 10; d++) await mkdir(path.join(many, `d${d}`), { recursive: true });
      for (let i = 0; i < 1100; i++) await writeFile(path.join(many, `d${i % 10}`, `f${i}`), String(i));
      const res = await direct(['--to', r.url, many, '--then', 'show', '--json', '--quiet']);
      expect(res.code, ctx(res)).to.equal(0);
      expect(events(res.stdout).filter((e) => e.type === 'received')).to.have.length(1100);
      expect(envLines(actionEvents(res.stdout)[0]!.output).get('RELAY_FILES'), 'RELAY_FILES of a send of 1100 files').to.equal('1100');
    });

    it('through the agent: exit 0, same environment, output prefixed by the receiver\'s name; --json has the action event', async () => {
      const r = await startReceiver({ actionDir: await actionDir({ show: ENV_ACTION }), node: 'node-agent' });
      const src = await tmpDir('relay-src-');
      const f = await randomFile(src, 4000, 'via-agent.bin');
      const agent = await startAgent({ receivers: { pi1: r.url }, allowRoots: [src] });
      const res = await agent.relay(['send', f.path, '--to', 'pi1', '--then', 'show']);
      expect(res.code, ctx(res)).to.equal(0);
      expect(res.stdout).to.match(/^action show on pi1: exited 0 in \S+/m);
      const env = envLines(prefixed(res.stdout, 'pi1').join('\n'));
      expect(env.get('RELAY_FILE_PATH')).to.equal(path.join(r.dir, 'via-agent.bin'));
      expect(env.get('RELAY_FILE_SIZE')).to.equal(String(f.size));
      expect(env.get('RELAY_FILE_SHA256')).to.equal(f.sha256);
      expect(env.get('RELAY_NODE')).to.equal('node-agent');

      const json = await agent.relay(['send', f.path, '--to', 'pi1', '--then', 'show', '--json']);
      expect(json.code, ctx(json)).to.equal(0);
      const [a, ...more] = actionEvents(json.stdout);
      expect(more).to.deep.equal([]);
      expect(a).to.include({ type: 'action', target: 'pi1', name: 'show', exitCode: 0, signal: null, timedOut: false, ok: true });
      expect(a!.code).to.equal(undefined);
      expect(a!.durationMs).to.be.a('number').and.at.least(0);
      expect(envLines(a!.output).get('RELAY_FILE_SHA256')).to.equal(f.sha256);
    });
  });

  it('a clean environment: neither the receiver\'s token (env or file) nor its other variables reach the action', async () => {
    const actions = await actionDir({ env: 'env' });
    const secretToken = `file-token-${Date.now()}`;
    const recvTokenFile = path.join(await tmpDir('relay-rtoken-'), 'token');
    await writeFile(recvTokenFile, `${secretToken}\n${TOKEN}\n`);
    const inEnv = await startReceiverProcess({
      dir: await tmpDir('relay-inbox-'), args: ['--action-dir', actions, '--node', 'envnode'],
      env: { SECRET_X: '1', RELAY_SECRET_Y: 'receiver-only', RELAY_TOKEN: TOKEN },
    });
    const inFile = await startReceiverProcess({
      dir: await tmpDir('relay-inbox-'), args: ['--action-dir', actions, '--node', 'filenode', '--token-file', recvTokenFile],
      env: { SECRET_X: '1', RELAY_SECRET_Y: 'receiver-only', RELAY_TOKEN: undefined },
    });
    const f = await randomFile(await tmpDir('relay-src-'), 100, 'e.bin');
    const res = await direct(['--to', inEnv.url, '--to', inFile.url, f.path, '--then', 'env', '--json']);
    expect(res.code, ctx(res)).to.equal(0);
    const acts = actionEvents(res.stdout);
    expect(acts.map((a) => a.target).sort()).to.deep.equal([inEnv.url, inFile.url].sort());
    const allowed = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'RELAY_NODE', 'RELAY_ACTION', 'RELAY_FILES', 'RELAY_FILE_PATH', 'RELAY_FILE_SIZE', 'RELAY_FILE_SHA256'];
    // What /bin/sh itself adds to what it exports.
    const shell = ['PWD', 'OLDPWD', 'SHLVL', '_'];
    for (const a of acts) {
      expect(a.ok, a.output).to.equal(true);
      for (const secret of [TOKEN, secretToken, 'SECRET_X', 'receiver-only', recvTokenFile]) expect(a.output, `${a.target}: ${secret}`).to.not.contain(secret);
      const names = [...envLines(a.output).keys()];
      expect(names.filter((n) => !allowed.includes(n) && !shell.includes(n)), a.output).to.deep.equal([]);
      expect(names).to.include.members(['PATH', 'HOME', 'RELAY_NODE', 'RELAY_FILE_PATH']);
      expect(names.filter((n) => n.startsWith('RELAY_TOKEN'))).to.deep.equal([]);
    }
    expect(envLines(acts.find((a) => a.target === inFile.url)!.output).get('RELAY_NODE')).to.equal('filenode');
    // Nor does the sender print it.
    expect(res.stdout + res.stderr).to.not.contain(TOKEN);
  });

  it('a release: the action runs after the switch and sees the new release (id, its path, current resolving to the new content)', async () => {
    const show = [
      'env | grep "^RELAY_" | sort',
      'echo "content=$(cat "$RELAY_CURRENT_PATH/index.html")"',
      'echo "resolved=$(readlink -f "$RELAY_CURRENT_PATH")"',
    ].join('\n');
    const r = await startReceiver({ actionDir: await actionDir({ show }), node: 'web1' });
    const site = path.join(await tmpDir('relay-src-'), 'site');
    await mkdir(site);
    const ids: string[] = [];
    for (const version of ['v1', 'v2']) {
      await writeFile(path.join(site, 'index.html'), `${version}-content\n`);
      const res = await direct(['--to', r.url, site, '--release', 'www', '--then', 'show', '--json']);
      expect(res.code, ctx(res)).to.equal(0);
      const evs = events(res.stdout);
      const switchedAt = evs.findIndex((e) => e.type === 'release' && (e as { phase?: string }).phase === 'switched');
      const actionAt = evs.findIndex((e) => e.type === 'action');
      expect(switchedAt, res.stdout).to.be.at.least(0);
      expect(actionAt, 'the action event follows the switch').to.be.greaterThan(switchedAt);
      const id = (evs[switchedAt] as { id: string }).id;
      const action = evs[actionAt] as ActionEvent;
      expect(action).to.include({ name: 'show', ok: true, exitCode: 0 });
      const env = envLines(action.output);
      const currentLink = path.join(r.dir, 'www', 'current');
      expect(env.get('RELAY_RELEASE')).to.equal('www');
      expect(env.get('RELAY_RELEASE_ID')).to.equal(id);
      expect(env.get('RELAY_CURRENT_PATH')).to.equal(currentLink);
      expect(env.get('RELAY_PREVIOUS_RELEASE_ID')).to.equal(ids.at(-1) ?? '');
      expect(env.get('RELAY_NODE')).to.equal('web1');
      expect(env.has('RELAY_FILE_PATH'), 'no single-file values for a release').to.equal(false);
      // Ran after the switch: current already resolved to the new release and its new content.
      expect(env.get('content')).to.equal(`${version}-content`);
      const releasePath = await realpath(env.get('RELAY_RELEASE_PATH')!);
      expect(env.get('resolved')).to.equal(releasePath);
      expect(await realpath(currentLink)).to.equal(releasePath);
      expect(path.basename(releasePath)).to.equal(id);
      ids.push(id);
    }
    expect(ids[1]).to.not.equal(ids[0]);
  });

  describe('a failing action', () => {
    const FAIL = 'echo "boom" >&2\nexit 4';

    it('exit 4 with "boom" on stderr: exit 1, FAILED action ... (ACTION_FAILED) and "TARGET| boom"', async () => {
      const r = await startReceiver({ actionDir: await actionDir({ check: FAIL }) });
      const f = await randomFile(await tmpDir('relay-src-'), 500, 'f.bin');
      const res = await direct(['--to', r.url, f.path, '--then', 'check']);
      expect(res.code, ctx(res)).to.equal(1);
      expect(res.stdout).to.match(new RegExp(`^FAILED action check on ${r.url}: exited 4 in \\S+ \\(ACTION_FAILED\\)$`, 'm'));
      expect(prefixed(res.stdout, r.url)).to.deep.equal(['boom']);
      // The file itself was confirmed (the action ran after it).
      expect(await publishedEntries(r.dir)).to.deep.equal(['f.bin']);
    });

    it('an action killed by a signal: exit 1, "killed by SIGKILL", signal in --json', async () => {
      const r = await startReceiver({ actionDir: await actionDir({ die: 'echo dying\nkill -9 $$' }) });
      const f = await randomFile(await tmpDir('relay-src-'), 100, 's.bin');
      const res = await direct(['--to', r.url, f.path, '--then', 'die']);
      expect(res.code, ctx(res)).to.equal(1);
      expect(res.stdout).to.match(new RegExp(`^FAILED action die on ${r.url}: killed by SIGKILL in \\S+ \\(ACTION_FAILED\\)$`, 'm'));
      const json = await direct(['--to', r.url, f.path, '--then', 'die', '--json']);
      expect(actionEvents(json.stdout)[0]).to.include({ exitCode: null, signal: 'SIGKILL', timedOut: false, ok: false, code: 'ACTION_FAILED', output: 'dying\n' });
    });

    it('two receivers, only one fails: exit 1, and the other\'s success is printed too (text and --json)', async () => {
      const bad = await startReceiver({ actionDir: await actionDir({ check: FAIL }) });
      const good = await startReceiver({ actionDir: await actionDir({ check: 'echo "fine"' }) });
      const f = await randomFile(await tmpDir('relay-src-'), 500, 'g.bin');
      const res = await direct(['--to', bad.url, '--to', good.url, f.path, '--then', 'check']);
      expect(res.code, ctx(res)).to.equal(1);
      expect(res.stdout).to.match(new RegExp(`^FAILED action check on ${bad.url}: exited 4 in \\S+ \\(ACTION_FAILED\\)$`, 'm'));
      expect(res.stdout).to.match(new RegExp(`^action check on ${good.url}: exited 0 in \\S+$`, 'm'));
      expect(prefixed(res.stdout, bad.url)).to.deep.equal(['boom']);
      expect(prefixed(res.stdout, good.url)).to.deep.equal(['fine']);

      const json = await direct(['--to', bad.url, '--to', good.url, f.path, '--then', 'check', '--json']);
      expect(json.code, ctx(json)).to.equal(1);
      const acts = actionEvents(json.stdout);
      expect(acts.find((a) => a.target === bad.url)).to.include({ name: 'check', exitCode: 4, signal: null, timedOut: false, ok: false, code: 'ACTION_FAILED', output: 'boom\n' });
      expect(acts.find((a) => a.target === good.url)).to.include({ name: 'check', exitCode: 0, timedOut: false, ok: true, output: 'fine\n' });
      expect(events(json.stdout).at(-1)).to.include({ type: 'done', ok: false });
    });
  });

  describe('an action a target does not define: NO_ACTION before any byte is sent', () => {
    it('a plain send: exit 1, NO_ACTION, the receiver\'s dir stays empty', async () => {
      const r = await startReceiver({ actionDir: await actionDir({ other: 'true' }) });
      const f = await randomFile(await tmpDir('relay-src-'), 50_000, 'never.bin');
      const res = await direct(['--to', r.url, f.path, '--then', 'nope']);
      expect(res.code, ctx(res)).to.equal(1);
      expect(res.stdout + res.stderr).to.contain('NO_ACTION');
      expect(await publishedEntries(r.dir)).to.deep.equal([]);
      // A receiver without --action-dir at all defines none.
      const bare = await startReceiver();
      const res2 = await direct(['--to', bare.url, f.path, '--then', 'other', '--json']);
      expect(res2.code, ctx(res2)).to.equal(1);
      expect(res2.stdout + res2.stderr).to.contain('NO_ACTION');
      expect(await publishedEntries(bare.dir)).to.deep.equal([]);
    });

    it('a release: exit 1, NO_ACTION, no release folder on the node', async () => {
      const r = await startReceiver({ actionDir: await actionDir({ other: 'true' }) });
      const site = path.join(await tmpDir('relay-src-'), 'site');
      await randomFile(site, 1000, 'index.html');
      const res = await direct(['--to', r.url, site, '--release', 'www', '--then', 'nope']);
      expect(res.code, ctx(res)).to.equal(1);
      expect(res.stdout + res.stderr).to.contain('NO_ACTION');
      expect(await publishedEntries(r.dir)).to.deep.equal([]);
    });

    it('two targets, only one lacks it (--direct and through the agent): exit 1, nothing sent to either, the action ran nowhere', async () => {
      const marks = await tmpDir('relay-marks-');
      const has = await startReceiver({ actionDir: await actionDir({ deploy: `echo ran >> ${marks}/ran` }) });
      const lacks = await startReceiver({ actionDir: await actionDir({ other: 'true' }) });
      const src = await tmpDir('relay-src-');
      const f = await randomFile(src, 20_000, 'half.bin');
      const site = path.join(src, 'site');
      await randomFile(site, 1000, 'index.html');

      for (const args of [[f.path], [site, '--release', 'www']]) {
        const res = await direct(['--to', has.url, '--to', lacks.url, ...args, '--then', 'deploy']);
        expect(res.code, ctx(res)).to.equal(1);
        expect(res.stdout + res.stderr).to.contain('NO_ACTION');
        expect(res.stdout + res.stderr, 'names the target lacking it').to.contain(lacks.url);
      }
      const agent = await startAgent({ receivers: { has: has.url, lacks: lacks.url }, allowRoots: [src] });
      for (const args of [[f.path], [site, '--release', 'www']]) {
        const res = await agent.relay(['send', '--to', 'all', ...args, '--then', 'deploy']);
        expect(res.code, ctx(res)).to.equal(1);
        expect(res.stdout + res.stderr).to.contain('NO_ACTION');
      }
      for (const r of [has, lacks]) expect(await publishedEntries(r.dir), r.url).to.deep.equal([]);
      expect(await readFile(path.join(marks, 'ran'), 'utf8').catch(() => 'nothing'), 'the action ran on the node defining it').to.equal('nothing');
    });

    it('a rollback: exit 1, NO_ACTION naming the node, and no node is switched back', async () => {
      const has = await startReceiver({ actionDir: await actionDir({ deploy: 'true' }) });
      const lacks = await startReceiver({ actionDir: await actionDir({ other: 'true' }) });
      const site = path.join(await tmpDir('relay-src-'), 'site');
      const currents: string[][] = [];
      for (const v of ['v1', 'v2']) {
        await mkdir(site, { recursive: true });
        await writeFile(path.join(site, 'index.html'), v);
        const res = await direct(['--to', has.url, '--to', lacks.url, site, '--release', 'www']);
        expect(res.code, ctx(res)).to.equal(0);
        currents.push(await Promise.all([has, lacks].map((r) => readlink(path.join(r.dir, 'www', 'current')))));
      }
      const res = await runBin(BIN.relay, ['rollback', 'www', '--direct', '--token-file', tokenFile, '--to', has.url, '--to', lacks.url, '--then', 'deploy'], { env: CLI_ENV, timeoutMs: 60_000 });
      expect(res.code, ctx(res)).to.equal(1);
      expect(res.stdout + res.stderr).to.contain('NO_ACTION').and.contain(lacks.url).and.contain('no node was switched back');
      for (const [i, r] of [has, lacks].entries()) {
        expect(await readlink(path.join(r.dir, 'www', 'current')), r.url).to.equal(currents[1]![i]);
        expect(await readFile(path.join(r.dir, 'www', 'current', 'index.html'), 'utf8')).to.equal('v2');
      }
    });
  });

  it('what is not an action: a file that is not executable, a folder, a link to a file senders wrote, a name with a path', async () => {
    const marks = await tmpDir('relay-marks-');
    const dir = await actionDir({});
    await writeFile(path.join(dir, 'plain'), `#!/bin/sh\necho ran >> ${marks}/ran\n`, { mode: 0o644 });
    await mkdir(path.join(dir, 'folder'));
    const r = await startReceiver({ actionDir: dir });
    // A sender sends an executable script into --dir; the operator's folder links to it: still not an action.
    const src = await tmpDir('relay-src-');
    await writeAction(src, 'evil.sh', `echo ran >> ${marks}/ran`);
    expect((await direct(['--to', r.url, path.join(src, 'evil.sh')])).code).to.equal(0);
    await chmod(path.join(r.dir, 'evil.sh'), 0o755);
    const { symlink } = await import('node:fs/promises');
    await symlink(path.join(r.dir, 'evil.sh'), path.join(dir, 'linked'));
    const f = await randomFile(src, 100, 'x.bin');
    for (const name of ['plain', 'folder', 'linked']) {
      const res = await direct(['--to', r.url, f.path, '--then', name]);
      expect(res.code, `${name}: ${ctx(res)}`).to.equal(1);
      expect(res.stderr, name).to.contain(`NO_ACTION: action "${name}" is not defined on ${r.url}`);
    }
    // A name with a path is a usage mistake, refused before anything is asked of a node.
    for (const name of [`../${path.basename(dir)}/plain`, 'a/b', '.hidden']) {
      const res = await direct(['--to', r.url, f.path, '--then', name]);
      expect(res.code, `${name}: ${ctx(res)}`).to.equal(2);
      expect(res.stderr, name).to.match(/USAGE: --then needs the name of an action/);
    }
    expect(await publishedEntries(r.dir)).to.deep.equal(['evil.sh']);
    expect(await readFile(path.join(marks, 'ran'), 'utf8').catch(() => 'nothing')).to.equal('nothing');
  });

  describe('--action-timeout', () => {
    it('a hanging action that started children (and ignores SIGTERM): its group is killed at the limit; timedOut, exit 1, the children gone', async () => {
      const pids = path.join(await tmpDir('relay-pids-'), 'pids');
      const hang = [
        "trap '' TERM",
        'sleep 300 &',
        `echo $! >> ${pids}`,
        'sleep 300 &',
        `echo $! >> ${pids}`,
        'echo "started children"',
        'wait',
        'wait',
      ].join('\n');
      const r = await startReceiver({ actionDir: await actionDir({ hang }) });
      const f = await randomFile(await tmpDir('relay-src-'), 100, 'h.bin');
      const t0 = Date.now();
      const res = await direct(['--to', r.url, f.path, '--then', 'hang', '--action-timeout', '1s', '--json']);
      const elapsed = Date.now() - t0;
      expect(res.code, ctx(res)).to.equal(1);
      const [a] = actionEvents(res.stdout);
      expect(a, res.stdout).to.include({ name: 'hang', timedOut: true, ok: false, code: 'ACTION_FAILED' });
      expect(a!.output).to.contain('started children').and.to.match(/timed out/);
      expect(a!.durationMs).to.be.at.least(1000).and.below(10_000);
      expect(elapsed, 'the step ends soon after the limit, not after the children\'s 300 s').to.be.below(20_000);
      const children = (await readFile(pids, 'utf8')).trim().split('\n').map(Number);
      expect(children).to.have.length(2);
      for (const pid of children) await eventually(() => gone(pid), `child ${pid} of the timed-out action is gone`, 10_000);
    });

    it('text output says it was killed at the timeout; children that honour SIGTERM are gone too', async () => {
      const pids = path.join(await tmpDir('relay-pids-'), 'pids');
      const r = await startReceiver({ actionDir: await actionDir({ hang: `sleep 300 &\necho $! > ${pids}\nwait` }) });
      const f = await randomFile(await tmpDir('relay-src-'), 100, 'h2.bin');
      const res = await direct(['--to', r.url, f.path, '--then', 'hang', '--action-timeout', '1s']);
      expect(res.code, ctx(res)).to.equal(1);
      expect(res.stdout).to.match(new RegExp(`^FAILED action hang on ${r.url}: killed at the timeout after \\S+ \\(ACTION_FAILED\\)$`, 'm'));
      const pid = Number((await readFile(pids, 'utf8')).trim());
      await eventually(() => gone(pid), `child ${pid} of the timed-out action is gone`, 10_000);
    });
  });

  it('one run at a time per action per node: two concurrent sends with --then of the same action never overlap', async () => {
    const work = await tmpDir('relay-serial-');
    const log = path.join(work, 'log');
    const go = path.join(work, 'go');
    // Each run logs its start, waits (bounded) for the test's go-ahead, then logs its end.
    const serial = [
      'name=$(basename "$RELAY_FILE_PATH")',
      `echo "start $name" >> ${log}`,
      'i=0',
      `while [ ! -e ${go} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done`,
      'sleep 0.2',
      `echo "end $name" >> ${log}`,
    ].join('\n');
    const r: TestReceiver = await startReceiver({ actionDir: await actionDir({ serial }) });
    // Sees each run the node is asked for (a spy on the receiver's runner), so the second is known to be asked while the first runs.
    const runs = new EventEmitter();
    let asked = 0;
    const runner = (r as unknown as { actions?: { run?: (...args: unknown[]) => Promise<unknown> } }).actions;
    if (typeof runner?.run === 'function') {
      const run = runner.run.bind(runner);
      runner.run = (...args: unknown[]) => {
        asked++;
        runs.emit('run');
        return run(...args);
      };
    }
    const src = await tmpDir('relay-src-');
    const [f1, f2] = [await randomFile(src, 3000, 'first.bin'), await randomFile(src, 3000, 'second.bin')];
    const sendOne = (file: string) => spawnBin(BIN.relay, ['send', '--direct', '--token-file', tokenFile, '--to', r.url, file, '--then', 'serial'], { env: CLI_ENV });
    const readLog = (): Promise<string[]> => readFile(log, 'utf8').then((t) => t.trim().split('\n'), () => []);

    const p1 = sendOne(f1.path);
    await eventually(async () => (await readLog()).includes('start first.bin'), 'the first run started', 20_000);
    const p2 = sendOne(f2.path);
    await eventually(() => p2.stdout().includes('received second.bin'), 'the second file was confirmed', 20_000);
    if (runner?.run) await eventually(() => asked >= 2, 'the node was asked for the second run', 20_000);
    expect(await readLog(), 'the second run waits while the first runs').to.deep.equal(['start first.bin']);
    await writeFile(go, '');
    const [res1, res2] = await Promise.all([untilExit(p1, 30_000), untilExit(p2, 30_000)]);
    expect(res1.code, ctx(res1)).to.equal(0);
    expect(res2.code, ctx(res2)).to.equal(0);
    expect(await readLog()).to.deep.equal(['start first.bin', 'end first.bin', 'start second.bin', 'end second.bin']);
  });

  it('output bounds: 200 KiB of output with escape sequences → the tail only, ≤ 8192 chars, starting with "…", no raw ESC', async () => {
    const loud = [
      "printf '\\033[31mred-start\\033[0m\\r\\n'",
      "head -c 204800 /dev/zero | tr '\\0' 'x'",
      "printf '\\n'",
      // Some lines of escapes at the end, which the tail keeps.
      'i=0',
      "while [ $i -lt 40 ]; do printf '\\033[2J\\033]0;title\\007\\033[1mline %s\\r\\n' $i; i=$((i+1)); done",
      "printf 'the-end\\n'",
    ].join('\n');
    const r = await startReceiver({ actionDir: await actionDir({ loud }) });
    const f = await randomFile(await tmpDir('relay-src-'), 100, 'l.bin');
    const json = await direct(['--to', r.url, f.path, '--then', 'loud', '--json']);
    expect(json.code, ctx(json)).to.equal(0);
    const [a] = actionEvents(json.stdout);
    expect(a).to.include({ ok: true, exitCode: 0 });
    const out = a!.output;
    expect(out.length).to.be.at.most(8192);
    expect(out.startsWith('…'), out.slice(0, 40)).to.equal(true);
    expect(out).to.not.contain('\x1b').and.to.not.contain('\r').and.to.not.contain('\x07');
    expect(out).to.contain('\\x1b[2J').and.to.contain('\\x07').and.to.contain('the-end');
    expect(out, 'the head was dropped').to.not.contain('red-start');

    const text = await direct(['--to', r.url, f.path, '--then', 'loud']);
    expect(text.code, ctx(text)).to.equal(0);
    expect(text.stdout).to.not.contain('\x1b').and.to.not.contain('\r');
    const printed = prefixed(text.stdout, r.url);
    expect(printed.join('\n').length).to.be.at.most(8192);
    expect(printed[0]!.startsWith('…')).to.equal(true);
    expect(printed.at(-1)).to.equal('the-end');
  });

  it('metrics and logs: one ok, one failed and one timed-out run are counted by action and outcome, with durations, and logged', async () => {
    const { logger, lines } = captureLogger('info');
    const r = await startReceiver({
      actionDir: await actionDir({ good: 'echo ok', bad: 'exit 3', slow: 'sleep 30' }), node: 'metered', logger,
    });
    const f = await randomFile(await tmpDir('relay-src-'), 100, 'm.bin');
    const before = await scrape(r.url);
    for (const name of ['good', 'bad', 'slow']) expect(count(before, 'relay_receiver_actions_total', { action: name, outcome: 'ok' })).to.equal(0);

    expect((await direct(['--to', r.url, f.path, '--then', 'good'])).code).to.equal(0);
    expect((await direct(['--to', r.url, f.path, '--then', 'bad'])).code).to.equal(1);
    expect((await direct(['--to', r.url, f.path, '--then', 'slow', '--action-timeout', '1s'])).code).to.equal(1);

    expect((await direct(['--to', r.url, f.path, '--then', 'nope'])).code).to.equal(1);

    const text = await scrape(r.url);
    expect(text, 'a name the node does not define is no label').to.not.contain('action="nope"');
    const outcomes = { good: 'ok', bad: 'failed', slow: 'timeout' } as const;
    for (const [action, outcome] of Object.entries(outcomes)) {
      for (const o of ['ok', 'failed', 'timeout']) {
        expect(count(text, 'relay_receiver_actions_total', { action, outcome: o }), `${action} ${o}`).to.equal(o === outcome ? 1 : 0);
      }
    }
    expect(text).to.match(/^# TYPE relay_receiver_action_duration_seconds (histogram|summary)$/m);
    const histogram = /^# TYPE relay_receiver_action_duration_seconds histogram$/m.test(text);
    for (const action of Object.keys(outcomes)) {
      expect(sample(text, 'relay_receiver_action_duration_seconds_count', { action }), action).to.equal(1);
      expect(sample(text, 'relay_receiver_action_duration_seconds_sum', { action }), action).to.be.a('number').and.at.least(0);
      if (histogram) expect(sample(text, 'relay_receiver_action_duration_seconds_bucket', { action, le: '+Inf' }), action).to.equal(1);
    }
    expect(sample(text, 'relay_receiver_action_duration_seconds_sum', { action: 'slow' })).to.be.at.least(1);

    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => typeof l.action === 'string' && typeof l.durationMs === 'number');
    expect(logged.map((l) => [l.node, l.action])).to.deep.equal([['metered', 'good'], ['metered', 'bad'], ['metered', 'slow']]);
    const status = logged.map((l) => String(l.status));
    expect(status[0]).to.equal('ok');
    expect(status[1]).to.match(/3/);
    expect(status[2]).to.match(/timeout|timed out/);
    for (const l of logged) expect(String(l.msg)).to.contain(String(l.action));
    expect(lines.join('')).to.not.contain(TOKEN);
  });

  describe('relay-receiver refuses an --action-dir where senders write', () => {
    const cases: Array<[string, (dir: string) => { args: string[]; env?: Record<string, string> }]> = [
      ['--action-dir inside --dir', (dir) => ({ args: ['--action-dir', path.join(dir, 'actions')] })],
      ['RELAY_ACTION_DIR inside --dir', (dir) => ({ args: [], env: { RELAY_ACTION_DIR: path.join(dir, 'actions') } })],
      ['--action-dir equal to --dir', (dir) => ({ args: ['--action-dir', dir] })],
      ['--dir inside --action-dir', (dir) => ({ args: ['--action-dir', path.dirname(dir)] })],
    ];
    for (const [what, make] of cases) {
      it(`${what}: exits 2 at start with a message naming the rule`, async () => {
        const dir = path.join(await tmpDir('relay-inbox-'), 'inbox');
        await mkdir(path.join(dir, 'actions'), { recursive: true });
        await writeAction(path.join(dir, 'actions'), 'evil', 'true');
        const { args, env } = make(dir);
        const res = await runBin(BIN.receiver, ['--host', '127.0.0.1', '--port', '0', '--dir', dir, '--min-free', '0', ...args], {
          env: { RELAY_TOKEN: TOKEN, RELAY_TOKEN_FILE: undefined, RELAY_LOG_LEVEL: undefined, RELAY_ACTION_DIR: undefined, ...env }, timeoutMs: 20_000,
        });
        expect(res.code, ctx(res)).to.equal(2);
        expect(res.stderr).to.match(/^relay-receiver: action dir ".+" must be outside the receive dir ".+" \(senders write there\)$/m);
        expect(res.stderr).to.not.contain('receiver listening');
      });
    }
  });
});
