/**
 * `npm run bench [-- options]`: every path relay offers, side by side with its baseline in one run on
 * loopback, methods interleaved round by round, medians reported. Absolute numbers on a shared machine are
 * noise; ratios within one run are the signal. Every relay path and the Node pipe end with each file
 * fsynced on the receiving side; scp and rsync do not fsync, which favours them.
 *
 *   --size <size>        the big file (default 1G)
 *   --small-files <n>    4 KiB files for the small-files paths (default 10000; 0 leaves them out)
 *   --runs <n>           rounds (default 3)
 *   --json               the LAST line of output is one JSON object with the figures
 *   --only <groups>      comma-separated subset of: big,tmpfs,window,ssh,small,fanout,resume,release (default
 *                        all; release brings the disk probe and rsync rows it is compared with)
 *   --profile <dir>      run the receivers and the sender agent under `node --cpu-prof`, profiles into dir
 *   --baseline <tree>    another built checkout (e.g. `git worktree add /tmp/base <rev> && cd /tmp/base &&
 *                        npm ci && npx tsc -b`): its receiver and agent run beside this tree's, and the agent
 *                        paths (disk, tmpfs, small files) are timed on both, interleaved, as `<key>Base` rows;
 *                        the JSON's `baselineRatios` gives this tree's rate over the baseline's, with the
 *                        per-round spread of each
 *
 * Measured per method: MiB/s or files/s, the ratio to its baseline, CPU-seconds per GiB of the sending and
 * the receiving processes (/proc utime+stime for the long-lived agents, rusage at exit for the one-shot
 * `relay send --direct` and pipe sender), and their peak RSS (VmHWM, reset before each run).
 */
import { existsSync, statfsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rename, rm, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseSize } from '@relayer/common';
import { FaultProxy } from './support/proxy.js';
import { makePayload, makeSmallFiles } from './bench/data.js';
import { bin, DIST, killAll, RECEIVER_NODE_OPTIONS, RELAY_NODE_OPTIONS, runNode, launchFlags, startDaemon, type Cost, type Daemon } from './bench/proc.js';
import { releaseRows, releaseSummary } from './bench/release.js';
import { median, summarize, table, type MethodSpec, type Sample } from './bench/report.js';
import { startSsh, type Ssh } from './bench/ssh.js';

const TOKEN = 'bench-token';
const GROUPS = ['big', 'tmpfs', 'window', 'ssh', 'small', 'fanout', 'resume', 'release'] as const;
type Group = (typeof GROUPS)[number];

const { values: argv } = parseArgs({
  options: {
    size: { type: 'string', default: '1G' },
    'small-files': { type: 'string', default: '10000' },
    runs: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    only: { type: 'string' },
    profile: { type: 'string' },
    baseline: { type: 'string' },
  },
  strict: true,
});
const SIZE = parseSize(argv.size!);
const BASE = argv.baseline ? path.resolve(argv.baseline) : undefined;
if (BASE && !existsSync(path.join(BASE, 'node_modules/.bin/relay-sender'))) throw new Error(`--baseline ${BASE}: no node_modules/.bin/relay-sender there (npm ci && npx tsc -b in it first)`);
const SMALL = Math.max(0, Math.floor(Number(argv['small-files'])));
const RUNS = Math.min(Math.max(Math.floor(Number(argv.runs)), 1), 20);
const SMALL_SIZE = 4096;
const only = new Set((argv.only?.split(',').map((s) => s.trim()) ?? [...GROUPS]) as Group[]);
for (const g of only) if (!GROUPS.includes(g)) throw new Error(`--only: unknown group ${g} (${GROUPS.join(', ')})`);
if (SMALL === 0) for (const g of ['small', 'release'] as const) only.delete(g);
const say = (s: string): void => void process.stdout.write(`${s}\n`);

function isTmpfs(dir: string): boolean {
  try {
    return statfsSync(dir).type === 0x01021994;
  } catch {
    return false;
  }
}

/** Where `empty` moves many-file outputs to; removed with the work folder at the end of the run. */
const KEPT = '.kept';

/**
 * Clears what a run left in a receiving folder (keeping the receiver's own partial folder). A small-files
 * run's output is moved aside, not removed: for minutes after thousands of files are deleted, ext4 scans
 * past their "recently deleted" inodes on every file it creates (recently_deleted, find_inode_bit under the
 * folder's lock), so the next method would be timed against that and not against the disk.
 */
async function empty(dir: string, keep: boolean): Promise<void> {
  const entries = (await readdir(dir).catch(() => [] as string[])).filter((e) => e !== '.relay-partial' && e !== KEPT);
  if (keep) await mkdir(path.join(dir, KEPT), { recursive: true });
  await Promise.all(entries.map((e) => keep
    ? rename(path.join(dir, e), path.join(dir, KEPT, `${e}-${randomUUID()}`))
    : rm(path.join(dir, e), { recursive: true, force: true })));
}

/**
 * Waits until the file systems have written out what the last method left (`sync`), untimed: a removed
 * 1 GiB file is discarded (this disk is mounted with `discard`) and written back at the next journal commit,
 * which would otherwise land in the next method's time.
 */
async function settle(): Promise<void> {
  await new Promise<void>((resolve) => execFile('sync', () => resolve()));
}

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'relay-bench-'));
  const shmRoot = existsSync('/dev/shm') && isTmpfs('/dev/shm') ? await mkdtemp('/dev/shm/relay-bench-') : undefined;
  const rusage = path.join(work, 'rusage');
  await mkdir(rusage);
  const profArgs = argv.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(argv.profile)}`] : [];
  // Ctrl-C (or SIGTERM) stops every child and removes the temp folders, as the normal end does.
  const interrupted = (signal: NodeJS.Signals): void => {
    killAll();
    void Promise.all([rm(work, { recursive: true, force: true }), shmRoot && rm(shmRoot, { recursive: true, force: true })])
      .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', interrupted).once('SIGTERM', interrupted);
  const daemons: Daemon[] = [];
  try {
    if (isTmpfs(work)) say(`note: ${work} is on tmpfs; the "disk" figures are not disk figures`);
    if (!shmRoot && (only.has('tmpfs') || only.has('window'))) {
      say('tmpfs: not available (/dev/shm is not a tmpfs): tmpfs paths left out');
      only.delete('tmpfs');
    }
    const payload = path.join(work, 'src', 'payload.bin');
    await makePayload(payload, SIZE);
    const smallDir = path.join(work, 'src', 'small');
    if (only.has('small') || only.has('release')) await makeSmallFiles(smallDir, SMALL, SMALL_SIZE);

    // Receiving folders: disk (the temp folder's filesystem) and tmpfs, plus two more for the fan-out.
    const dirs = {
      disk: path.join(work, 'in-disk'), tmpfs: shmRoot ? path.join(shmRoot, 'in') : '', b: path.join(work, 'in-b'), c: path.join(work, 'in-c'),
      base: path.join(work, 'in-base'), baseTmpfs: shmRoot ? path.join(shmRoot, 'in-base') : '',
      pipeDisk: path.join(work, 'pipe-disk'), pipeTmpfs: shmRoot ? path.join(shmRoot, 'pipe') : '', ssh: path.join(work, 'ssh-in'), probe: path.join(work, 'probe'),
    };
    for (const d of Object.values(dirs)) if (d) await mkdir(d, { recursive: true });
    const binOf = (tree: string | undefined, name: string): string => (tree ? path.join(tree, 'node_modules/.bin', name) : bin(name));
    const receiver = (name: string, dir: string, tree?: string): Promise<Daemon> => startDaemon(`receiver ${name}`,
      [binOf(tree, 'relay-receiver'), '--host', '127.0.0.1', '--port', '0', '--dir', dir, '--min-free', '0', '--summary-every', '0'],
      { env: { RELAY_TOKEN: TOKEN, NODE_OPTIONS: RECEIVER_NODE_OPTIONS }, isReady: (l) => l.msg === 'receiver listening', nodeArgs: [...launchFlags(binOf(tree, 'relay-receiver')), ...profArgs] });
    const pipeServer = (dir: string): Promise<Daemon> => startDaemon('pipe server', [path.join(DIST, 'pipe-server.js'), dir], { stream: 'stdout', isReady: (l) => typeof l.port === 'number' });

    const recv: Record<string, Daemon> = {};
    recv.disk = await receiver('disk', dirs.disk);
    if (shmRoot) recv.tmpfs = await receiver('tmpfs', dirs.tmpfs);
    if (only.has('fanout')) {
      recv.b = await receiver('b', dirs.b);
      recv.c = await receiver('c', dirs.c);
    }
    daemons.push(...Object.values(recv));
    const url = (d: Daemon): string => `http://127.0.0.1:${String(d.ready.port)}`;
    const pipeDisk = await pipeServer(dirs.pipeDisk);
    const pipeTmpfs = shmRoot ? await pipeServer(dirs.pipeTmpfs) : undefined;
    daemons.push(pipeDisk, ...(pipeTmpfs ? [pipeTmpfs] : []));

    const socket = path.join(work, 'agent.sock');
    const startAgent = (label: string, sock: string, targets: Record<string, Daemon>, tree?: string): Promise<Daemon> => startDaemon(label,
      [binOf(tree, 'relay-sender'), '--socket', sock, '--allow-root', path.join(work, 'src'),
        ...Object.entries(targets).flatMap(([n, d]) => ['--receiver', `${n}=${url(d)}`]), '--summary-every', '0'],
      { env: { RELAY_TOKEN: TOKEN, NODE_OPTIONS: RELAY_NODE_OPTIONS }, isReady: (l) => l.msg === 'sender agent started', nodeArgs: profArgs });
    const agent = await startAgent('sender agent', socket, recv);
    daemons.push(agent);
    // The baseline tree's own receivers and agent: the same paths, the other code.
    const baseRecv: Record<string, Daemon> = {};
    const baseSocket = path.join(work, 'agent-base.sock');
    let baseAgent: Daemon | undefined;
    if (BASE) {
      baseRecv.disk = await receiver('disk (baseline)', dirs.base, BASE);
      if (shmRoot) baseRecv.tmpfs = await receiver('tmpfs (baseline)', dirs.baseTmpfs, BASE);
      daemons.push(...Object.values(baseRecv));
      baseAgent = await startAgent('sender agent (baseline)', baseSocket, baseRecv, BASE);
      daemons.push(baseAgent);
    }

    let ssh: Ssh | undefined;
    if (only.has('ssh') || only.has('small') || only.has('release')) {
      const s = await startSsh(work).catch((err: Error) => `failed to start: ${err.message}`);
      if (typeof s === 'string') say(`scp/rsync: ${s}`);
      else {
        ssh = s;
        daemons.push(s.sshd);
        if (!s.scp) say('scp: not installed');
        if (!s.rsync) say('rsync: not installed (apt-get install rsync)');
      }
    }

    // One-shot senders: `relay send --direct` and `relay send` (through the agent) as child processes.
    const relay = async (args: string[], tree?: string): Promise<{ cost: Cost; events: Record<string, unknown>[] }> => {
      const r = await runNode([binOf(tree, 'relay'), 'send', '--json', '--socket', tree ? baseSocket : socket, ...args], { RELAY_TOKEN: TOKEN, NODE_OPTIONS: RELAY_NODE_OPTIONS }, rusage);
      const events = r.stdout.split('\n').filter(Boolean).flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
      if (r.code !== 0) throw new Error(`relay send ${args.join(' ')} exited ${String(r.code)}: ${r.stderr.slice(-500)} ${JSON.stringify(events.filter((e) => e.type === 'failed').slice(0, 3))}`);
      return { cost: r, events };
    };
    let seq = 0;
    const name = (): string => `n${++seq}`;
    /** Times fn; the receiving daemons' cost windows span exactly the run. */
    const timed = async (receivers: Daemon[], fn: () => Promise<{ sender?: Cost; receiver?: Cost; extra?: Record<string, number> }>, senderDaemon?: Daemon): Promise<Sample> => {
      const ends = receivers.map((d) => d.window());
      const endSender = senderDaemon?.window();
      const t0 = performance.now();
      const r = await fn();
      const ms = performance.now() - t0;
      const rc = ends.map((e) => e());
      // Several receivers: CPU adds up; the main thread's figure is the busiest one's (each has its own loop).
      const receiverCost = rc.length ? {
        cpuSec: rc.reduce((n, c) => n + c.cpuSec, 0), mainCpuSec: Math.max(...rc.map((c) => c.mainCpuSec ?? NaN)), peakRssMB: Math.max(...rc.map((c) => c.peakRssMB)),
      } : r.receiver;
      let sender = r.sender;
      let extra = r.extra;
      if (endSender) {
        // The agent does the work; the `relay` client only renders its events: its CPU (mostly Node's
        // start-up) is kept apart as clientCpuSec.
        sender = endSender();
        if (r.sender) extra = { ...extra, clientCpuSec: r.sender.cpuSec };
      }
      return { ms, sender, receiver: receiverCost, extra };
    };
    const pipeSender = await startDaemon('pipe sender', [path.join(DIST, 'pipe-send.js')], { stream: 'stdout', isReady: (l) => l.ready === true, commands: true });
    daemons.push(pipeSender);
    const pipe = (server: Daemon) => () => timed([server], async () => {
      const r = await pipeSender.command({ file: payload, port: server.ready.port });
      if (r.sent !== SIZE) throw new Error(`pipe send failed: ${JSON.stringify(r)}`);
      return {};
    }, pipeSender);
    const direct = (target: Daemon, extra: string[] = []) => () => timed([target], async () => ({ sender: (await relay(['--direct', '--to', url(target), '--as', name(), ...extra, payload])).cost }));
    const viaAgent = (targets: string[], src = payload, extra: string[] = []) => () => timed(targets.map((t) => recv[t]!), async () => ({ sender: (await relay(['--to', targets.join(','), '--as', name(), ...extra, src])).cost }), agent);
    const viaBaseAgent = (target: string, src = payload) => () => timed([baseRecv[target]!], async () => ({ sender: (await relay(['--to', target, '--as', name(), src], BASE)).cost }), baseAgent);

    const cut = Math.floor(SIZE / 2);
    const MiB = 1024 * 1024;
    const specs: MethodSpec[] = [];
    const runners = new Map<string, () => Promise<Sample>>();
    const add = (group: Group | Group[], spec: MethodSpec, fn: () => Promise<Sample>): void => {
      if (![group].flat().some((g) => only.has(g))) return;
      specs.push(spec);
      runners.set(spec.key, fn);
    };
    const big = { unit: 'MiB/s' as const, amount: SIZE, bytes: SIZE };
    const small = { unit: 'files/s' as const, amount: SMALL, bytes: SMALL * SMALL_SIZE };
    add('big', { key: 'pipe', label: 'node net pipe + fsync, disk (baseline)', ...big }, pipe(pipeDisk));
    add('big', { key: 'direct', label: 'relay send --direct, disk', ...big, baseline: 'pipe' }, direct(recv.disk));
    add('big', { key: 'agent', label: 'relay send via agent, disk', ...big, baseline: 'pipe' }, viaAgent(['disk']));
    if (pipeTmpfs) {
      add('tmpfs', { key: 'pipeTmpfs', label: 'node net pipe + fsync, tmpfs (baseline)', ...big }, pipe(pipeTmpfs));
      add('tmpfs', { key: 'directTmpfs', label: 'relay send --direct, tmpfs', ...big, baseline: 'pipeTmpfs' }, direct(recv.tmpfs!));
      add('tmpfs', { key: 'agentTmpfs', label: 'relay send via agent, tmpfs', ...big, baseline: 'pipeTmpfs' }, viaAgent(['tmpfs']));
      add('window', { key: 'directW16Tmpfs', label: 'relay --direct --window 16, tmpfs', ...big, baseline: 'directTmpfs' }, direct(recv.tmpfs!, ['--window', '16']));
    }
    add('window', { key: 'directW16', label: 'relay --direct --window 16, disk', ...big, baseline: 'direct' }, direct(recv.disk, ['--window', '16']));
    if (ssh?.scp) add('ssh', { key: 'scp', label: 'scp over ssh (no fsync), disk', ...big, baseline: 'pipe' }, () => timed([], async () => (await ssh.scp!(payload, path.join(dirs.ssh, name())), {})));
    if (ssh?.rsync) add('ssh', { key: 'rsync', label: 'rsync over ssh (no fsync), disk', ...big, baseline: 'pipe' }, () => timed([], async () => (await ssh.rsync!(path.dirname(payload) + '/payload-only', path.join(dirs.ssh, name())), {})));
    add('fanout', { key: 'fanout3', label: 'relay via agent to 3 receivers, disk', ...big, bytes: SIZE, baseline: 'agent' }, viaAgent(['disk', 'b', 'c']));
    add('resume', { key: 'resume', label: `relay --direct, cut at 50%, disk`, ...big, baseline: 'direct' }, () => timed([recv.disk], async () => {
      const proxy = new FaultProxy(recv.disk.ready.port as number, { cutAfterBytes: cut, cuts: 1 });
      await proxy.start();
      try {
        const { cost, events } = await relay(['--direct', '--to', proxy.url, '--as', name(), payload]);
        const got = events.find((e) => e.type === 'received');
        if (!got || proxy.cutsDone !== 1) throw new Error('resume: no cut or no confirmation');
        return { sender: cost, extra: { resentBytes: (got.bytesSent as number) - SIZE, resumedFrom: got.resumedFrom as number } };
      } finally {
        await proxy.close();
      }
    }));
    add(['small', 'release'], { key: 'diskProbe', label: `disk probe: ${SMALL} × 4 KiB write+fsync+rename, 16 parallel (baseline)`, ...small }, () => timed([], async () => {
      const r = await runNode([path.join(DIST, 'disk-probe.js'), path.join(dirs.probe, name()), String(SMALL), String(SMALL_SIZE), '16'], {}, rusage);
      if (r.code !== 0) throw new Error(`disk probe failed: ${r.stderr}`);
      return { receiver: r };
    }));
    add('small', { key: 'smallAgent', label: `relay via agent: ${SMALL} × 4 KiB, disk`, ...small, baseline: 'diskProbe' }, viaAgent(['disk'], smallDir));
    // Each baseline row right after its own: the two see the same machine state, round by round.
    const compared: Array<[string, string]> = [];
    if (BASE) {
      const after = (key: string, spec: MethodSpec, fn: () => Promise<Sample>): void => {
        const i = specs.findIndex((x) => x.key === key);
        if (i < 0) return;
        specs.splice(i + 1, 0, spec);
        runners.set(spec.key, fn);
        compared.push([key, spec.key]);
      };
      after('agent', { key: 'agentBase', label: 'relay send via agent, disk (baseline tree)', ...big, baseline: 'pipe' }, viaBaseAgent('disk'));
      if (baseRecv.tmpfs) after('agentTmpfs', { key: 'agentTmpfsBase', label: 'relay send via agent, tmpfs (baseline tree)', ...big, baseline: 'pipeTmpfs' }, viaBaseAgent('tmpfs'));
      after('smallAgent', { key: 'smallAgentBase', label: `relay via agent: ${SMALL} × 4 KiB, disk (baseline tree)`, ...small, baseline: 'diskProbe' }, viaBaseAgent('disk', smallDir));
    }
    // Every file offered and sent in chunks (three round trips each, 16 in flight): how small files went before put frames.
    add('small', { key: 'smallOffered', label: `relay via agent, --small-max 0 (each file offered): ${SMALL} × 4 KiB, disk`, ...small, baseline: 'diskProbe' }, viaAgent(['disk'], smallDir, ['--small-max', '0']));
    if (ssh?.rsync) add(['small', 'release'], { key: 'rsyncSmall', label: `rsync over ssh: ${SMALL} × 4 KiB (no fsync)`, ...small, baseline: 'diskProbe' }, () => timed([], async () => (await ssh.rsync!(smallDir, path.join(dirs.ssh, name())), {})));
    for (const r of releaseRows({
      relayBin: bin('relay'), socket, env: { RELAY_TOKEN: TOKEN, NODE_OPTIONS: RELAY_NODE_OPTIONS }, rusageDir: rusage, agent, receiver: recv.disk,
      target: 'disk', dir: smallDir, files: SMALL, fileSize: SMALL_SIZE, timed, name, settle,
    })) add('release', r.spec, r.run);
    if (ssh?.rsync && only.has('ssh')) {
      // rsync copies folders: give it a folder holding only the payload.
      await mkdir(path.join(path.dirname(payload), 'payload-only'));
      await import('node:fs/promises').then((fs) => fs.link(payload, path.join(path.dirname(payload), 'payload-only', 'payload.bin')));
    }

    // Warm-up (not timed): every link connected, JIT warm, folders created.
    const warmup = await makePayload(path.join(work, 'src', 'warmup.bin'), 4 * 1024 * 1024);
    await relay(['--to', Object.keys(recv).join(','), '--as', 'warmup', warmup]);
    if (BASE) await relay(['--to', Object.keys(baseRecv).join(','), '--as', 'warmup', warmup], BASE);
    if (only.has('release')) await relay(['--to', 'disk', '--release', 'warmup-release', warmup]);
    for (const d of Object.values(dirs)) if (d) await empty(d, false);
    await settle();

    const samples = new Map<string, Sample[]>(specs.map((s) => [s.key, []]));
    say(`bench: ${argv.size} file (${SIZE} bytes), ${SMALL} small files of 4 KiB, ${RUNS} rounds, methods interleaved; node ${process.version}, ${os.cpus().length} cpus, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    for (let r = 0; r < RUNS; r++) {
      for (const spec of specs) {
        // A new version of the payload for every run, as each build makes: a sender that kept the sha256
        // of the last version must hash this one again (it is timed and costed like the rest).
        const now = new Date();
        await utimes(payload, now, now);
        const s = await runners.get(spec.key)!();
        samples.get(spec.key)!.push(s);
        say(`  round ${r + 1} ${spec.label}: ${(s.ms / 1000).toFixed(2)} s`);
        for (const d of Object.values(dirs)) if (d) await empty(d, spec.unit === 'files/s');
        await settle();
      }
    }
    const results = summarize(specs, samples);
    say('');
    say(table(results, specs));
    const by = (k: string) => results.find((x) => x.key === k);
    const num = (x: number | null | undefined): number | null => (x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(3)));
    const pipeCpu = by('pipe') ? (by('pipe')!.senderCpuSecPerGiB ?? 0) + (by('pipe')!.receiverCpuSecPerGiB ?? 0) : null;
    const agentCpu = by('agent') ? (by('agent')!.senderCpuSecPerGiB ?? 0) + (by('agent')!.receiverCpuSecPerGiB ?? 0) : null;
    const release = releaseSummary(results, samples);
    const relayResults = results.filter((x) => !['pipe', 'pipeTmpfs', 'scp', 'rsync', 'rsyncSmall', 'diskProbe'].includes(x.key));
    const maxOf = (xs: (number | null)[]): number | null => (xs.some((x) => x !== null) ? Math.max(...xs.filter((x): x is number => x !== null)) : null);
    const summary = {
      size: SIZE, smallFiles: SMALL, runs: RUNS, rateUnit: 'MiB/s', loadavg: os.loadavg(),
      rawMBps: num(by('pipe')?.rate), directMBps: num(by('direct')?.rate), agentMBps: num(by('agent')?.rate),
      directRatio: num(by('direct')?.ratio), agentRatio: num(by('agent')?.ratio),
      rawTmpfsMBps: num(by('pipeTmpfs')?.rate), tmpfsRatio: num(by('agentTmpfs')?.ratio), directTmpfsRatio: num(by('directTmpfs')?.ratio),
      window16Ratio: num(by('directW16')?.ratio), window16TmpfsRatio: num(by('directW16Tmpfs')?.ratio),
      senderCpuSecPerGiB: num(by('agent')?.senderCpuSecPerGiB), receiverCpuSecPerGiB: num(by('agent')?.receiverCpuSecPerGiB),
      senderMainCpuSecPerGiB: num(by('agent')?.senderMainCpuSecPerGiB), receiverMainCpuSecPerGiB: num(by('agent')?.receiverMainCpuSecPerGiB),
      pipeCpuSecPerGiB: num(pipeCpu), cpuRatio: num(agentCpu !== null && pipeCpu ? agentCpu / pipeCpu : null),
      senderPeakRssMB: num(maxOf(relayResults.map((x) => x.senderPeakRssMB))), receiverPeakRssMB: num(maxOf(relayResults.map((x) => x.receiverPeakRssMB))),
      smallFilesPerSec: num(by('smallAgent')?.rate), smallFilesPerSecOffered: num(by('smallOffered')?.rate), diskFsyncFilesPerSec: num(by('diskProbe')?.rate), smallFilesRatio: num(by('smallAgent')?.ratio),
      rsyncSmallFilesPerSec: num(by('rsyncSmall')?.rate), scpMBps: num(by('scp')?.rate), rsyncMBps: num(by('rsync')?.rate),
      fanout3TimeRatio: num(by('fanout3') && by('agent') ? by('fanout3')!.medianMs / by('agent')!.medianMs : null),
      resumeResentBytes: num(by('resume')?.extra.resentBytes), resumeWindowBytes: 8 * MiB,
      ...release.json,
      baseline: BASE ?? null,
      baselineRatios: Object.fromEntries(compared.filter(([k, b]) => by(k) && by(b)).map(([k, b]) => [k, versus(by(k)!, by(b)!)])),
      methods: results.map((x) => ({ ...x, rate: num(x.rate), ratio: num(x.ratio), medianMs: num(x.medianMs) })),
    };
    say('');
    if (summary.smallFilesRatio !== null && summary.rsyncSmallFilesPerSec) say(`small files: ${(summary.smallFilesPerSec! / summary.rsyncSmallFilesPerSec).toFixed(2)}× rsync over ssh`);
    if (summary.fanout3TimeRatio !== null) say(`fan-out to 3 took ${summary.fanout3TimeRatio}× the time of one`);
    if (summary.resumeResentBytes !== null) say(`resume after a cut at 50%: ${summary.resumeResentBytes} bytes sent twice (one window is ${8 * MiB})`);
    for (const l of release.lines) say(l);
    for (const [k, r] of Object.entries(summary.baselineRatios)) say(`${k}: this tree's rate ${r.ratio}× the baseline tree's (per round ${r.perRound.join(', ')}; spread of each side over rounds: ${r.spread}, ${r.baseSpread})`);
    if (summary.cpuRatio !== null) say(`CPU-s/GiB sender+receiver via agent: ${agentCpu!.toFixed(2)} vs pipe ${pipeCpu!.toFixed(2)} (${summary.cpuRatio}×)`);
    say(`load average at the end: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    if (argv.json) say(JSON.stringify(summary));
    void median;
  } finally {
    await Promise.all(daemons.map((d) => d.stop().catch(() => undefined)));
    killAll();
    await rm(work, { recursive: true, force: true });
    if (shmRoot) await rm(shmRoot, { recursive: true, force: true });
  }
}

/**
 * This tree's rate over the baseline's, overall and round by round (the rounds ran interleaved), and each
 * side's own spread over its rounds (max/min of its times): a ratio inside that spread is no change.
 */
function versus(ours: { runsMs: number[]; medianMs: number }, base: { runsMs: number[]; medianMs: number }) {
  const round = (x: number): number => Number(x.toFixed(3));
  const spread = (xs: number[]): number => round(Math.max(...xs) / Math.min(...xs));
  return {
    ratio: round(base.medianMs / ours.medianMs),
    perRound: ours.runsMs.map((ms, i) => round((base.runsMs[i] ?? NaN) / ms)),
    spread: spread(ours.runsMs),
    baseSpread: spread(base.runsMs),
  };
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
  killAll('SIGKILL');
  process.exit(1);
});
