/**
 * The bench's release rows (`relay send DIR --release NAME` through the sender agent, to the disk
 * receiver), timed in the same rounds as the disk probe and rsync over ssh:
 *   releaseFirst  the small-files folder as a new release (a new name every round: nothing to hard-link);
 *   rerelease     the same release again after 1% of its files were rewritten with new random bytes (the
 *                 first release of that name made current untimed just before): the receiver hard-links
 *                 the other 99% from its current release, so the figures are the share of bytes sent and
 *                 the time against the same round's releaseFirst.
 * `relay send --json` prints one `received` event per file (~350 bytes each); the bench's `relay` helper
 * keeps only the last 1 MB of stdout, so these rows read the events as they come and keep the sums.
 */
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { once } from 'node:events';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import type { JobEvent } from '@relayer/agent-sender';
import { DIST, type Cost, type Daemon } from './proc.js';
import { median, type MethodResult, type MethodSpec, type Sample } from './report.js';

type Timed = (receivers: Daemon[], fn: () => Promise<{ sender?: Cost; extra?: Record<string, number> }>, senderDaemon?: Daemon) => Promise<Sample>;

export interface ReleaseContext {
  relayBin: string;
  socket: string;
  env: NodeJS.ProcessEnv;
  /** Where the rusage hook writes the `relay` client's CPU and peak RSS. */
  rusageDir: string;
  agent: Daemon;
  receiver: Daemon;
  /** The receiver's name in the agent (`--to`). */
  target: string;
  /** The folder released: `files` files of `fileSize` bytes. */
  dir: string;
  files: number;
  fileSize: number;
  timed: Timed;
  name: () => string;
  settle: () => Promise<void>;
}

/** Files rewritten before a re-release. */
const CHANGED = 0.01;

interface Outcome {
  cost: Cost;
  received: number;
  unchanged: number;
  bytesSent: number;
}

let runs = 0;

/** `relay send --json --release <release> <dir>` through the agent, its events summed as they arrive. */
async function release(ctx: ReleaseContext, name: string): Promise<Outcome> {
  const file = path.join(ctx.rusageDir, `release-${process.pid}-${++runs}.json`);
  const child = spawn(process.execPath, ['--import', pathToFileURL(path.join(DIST, 'rusage-hook.js')).href, ctx.relayBin, 'send', '--json',
    '--socket', ctx.socket, '--to', ctx.target, '--release', name, ctx.dir], {
    env: { ...process.env, ...ctx.env, BENCH_RUSAGE_FILE: file }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { received: 0, unchanged: 0, bytesSent: 0 };
  let done: Extract<JobEvent, { type: 'done' }> | undefined;
  const failed: JobEvent[] = [];
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => void (stderr = (stderr + d).slice(-4096)));
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (l) => {
    let e: JobEvent;
    try {
      e = JSON.parse(l) as JobEvent;
    } catch {
      return;
    }
    if (e.type === 'received') {
      out.received++;
      out.bytesSent += e.bytesSent;
      if (e.unchanged) out.unchanged++;
    } else if (e.type === 'done') done = e;
    else if (e.type === 'failed' && failed.length < 3) failed.push(e);
  });
  const [code] = (await Promise.all([once(child, 'close'), once(lines, 'close')]))[0] as [number | null];
  let cost: Cost = { cpuSec: NaN, peakRssMB: NaN };
  try {
    cost = JSON.parse(await readFile(file, 'utf8')) as Cost;
    await rm(file, { force: true });
  } catch { /* the client died before its exit hook ran */ }
  if (code !== 0 || !done?.ok || out.received !== ctx.files) {
    throw new Error(`relay send --release ${name} exited ${String(code)} with ${out.received}/${ctx.files} files confirmed: ${stderr.slice(-500)} ${JSON.stringify(failed)}`);
  }
  return { cost, ...out };
}

let rewrites = 0;

/** Rewrites CHANGED of the folder's files with new random bytes (other files each time); returns how many. */
async function rewriteSome(ctx: ReleaseContext): Promise<number> {
  const names = (await readdir(ctx.dir)).sort();
  const count = Math.max(1, Math.round(names.length * CHANGED));
  const step = Math.floor(names.length / count);
  const offset = rewrites++ % step;
  const chosen = Array.from({ length: count }, (_, k) => names[(offset + k * step) % names.length]!);
  await Promise.all(chosen.map((n) => writeFile(path.join(ctx.dir, n), randomFillSync(Buffer.allocUnsafe(ctx.fileSize)))));
  return count;
}

/** The two rows, in the order they run in a round. */
export function releaseRows(ctx: ReleaseContext): Array<{ spec: MethodSpec; run: () => Promise<Sample> }> {
  const small = { unit: 'files/s' as const, amount: ctx.files, bytes: ctx.files * ctx.fileSize };
  const tree = ctx.files * ctx.fileSize;
  return [
    {
      spec: { key: 'releaseFirst', label: `relay send --release, first (nothing to link): ${ctx.files} × 4 KiB, disk`, ...small, baseline: 'diskProbe' },
      run: () => ctx.timed([ctx.receiver], async () => {
        const r = await release(ctx, ctx.name());
        if (r.unchanged !== 0) throw new Error(`releaseFirst: ${r.unchanged} files hard-linked in a release that is new`);
        return { sender: r.cost, extra: { bytesSentPct: (100 * r.bytesSent) / tree } };
      }, ctx.agent),
    },
    {
      spec: { key: 'rerelease', label: `relay send --release again, ${CHANGED * 100}% of files changed: ${ctx.files} × 4 KiB, disk`, ...small, baseline: 'releaseFirst' },
      run: async () => {
        // Untimed: the release the re-release starts from is current on the receiver, then 1% changes.
        const name = ctx.name();
        await release(ctx, name);
        const changed = await rewriteSome(ctx);
        await ctx.settle();
        return ctx.timed([ctx.receiver], async () => {
          const r = await release(ctx, name);
          return { sender: r.cost, extra: { bytesSentPct: (100 * r.bytesSent) / tree, filesSent: r.received - r.unchanged, filesChanged: changed } };
        }, ctx.agent);
      },
    },
  ];
}

const num = (x: number | null | undefined): number | null => (x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(3)));

/** The JSON summary's release keys and the lines printed under the table (verdicts against issue 19's targets). */
export function releaseSummary(results: MethodResult[], samples: Map<string, Sample[]>) {
  const by = (k: string) => results.find((x) => x.key === k);
  const first = by('releaseFirst');
  const again = by('rerelease');
  const rsync = by('rsyncSmall');
  // Round by round: each re-release against the first release timed in the same round.
  const firstMs = samples.get('releaseFirst') ?? [];
  const perRound = (samples.get('rerelease') ?? []).map((s, i) => s.ms / (firstMs[i]?.ms ?? NaN));
  const rows = [first, again].filter((x): x is MethodResult => x !== undefined);
  const peak = (side: 'senderPeakRssMB' | 'receiverPeakRssMB'): number | null => {
    const xs = rows.map((x) => x[side]).filter((x): x is number => x !== null);
    return xs.length ? Math.max(...xs) : null;
  };
  const json = {
    releaseFilesPerSec: num(first?.rate), releaseRatio: num(first?.ratio),
    releaseVsRsync: num(first && rsync ? first.rate / rsync.rate : null),
    rereleaseFilesPerSec: num(again?.rate), rereleaseBytesPct: num(again?.extra.bytesSentPct),
    rereleaseTimeRatio: num(perRound.length ? median(perRound) : null), rereleaseTimeRatioPerRound: perRound.map(num),
    releaseSenderPeakRssMB: num(peak('senderPeakRssMB')), releaseReceiverPeakRssMB: num(peak('receiverPeakRssMB')),
  };
  if (!first) return { json, lines: [] };
  const verdict = (x: number | null, ok: (x: number) => boolean, s: string): string => (x === null ? `${s}: not measured` : `${s}: ${ok(x) ? 'met' : 'NOT met'}`);
  const f = (x: number | null, d = 2): string => (x === null ? '–' : x.toFixed(d));
  const rss = Math.max(json.releaseSenderPeakRssMB ?? NaN, json.releaseReceiverPeakRssMB ?? NaN);
  const lines = [
    `release: ${f(json.releaseFilesPerSec, 0)} files/s, ${f(json.releaseRatio)}× the disk probe, ${f(json.releaseVsRsync)}× rsync over ssh; re-release of 1% changed: ${f(json.rereleaseBytesPct)}% of the bytes sent, ${f(json.rereleaseTimeRatio)}× the first release's time (per round ${perRound.map((x) => x.toFixed(2)).join(', ')}); peak RSS sender agent ${f(json.releaseSenderPeakRssMB, 0)} MB, receiver ${f(json.releaseReceiverPeakRssMB, 0)} MB`,
    `release targets: ${[
      verdict(json.releaseRatio, (x) => x >= 1, `≥ 1.0× disk probe (${f(json.releaseRatio)}×)`),
      verdict(json.releaseVsRsync, (x) => x >= 1, `moonshot ≥ rsync (${f(json.releaseVsRsync)}×)`),
      verdict(json.rereleaseBytesPct, (x) => x <= 2, `re-release ≤ 2% of bytes (${f(json.rereleaseBytesPct)}%)`),
      verdict(json.rereleaseTimeRatio, (x) => x <= 0.25, `≤ 0.25× first release's time (${f(json.rereleaseTimeRatio)}×)`),
      verdict(Number.isFinite(rss) ? rss : null, (x) => x <= 120, `peak RSS ≤ 120 MB per agent (${f(Number.isFinite(rss) ? rss : null, 0)} MB)`),
    ].join('; ')}`,
  ];
  return { json, lines };
}
