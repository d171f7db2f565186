/**
 * Turns a job's event stream into what a person or a script reads. Results (confirmations, failures, the
 * summary) go to stdout in every mode; progress goes to stderr: bars per target on a TTY, a plain line
 * every few seconds otherwise (Jenkins), nothing extra with --json (one JSON line per event on stdout).
 *
 * On a TTY a send of many files shows per-target progress by files and bytes, its failures and a line per
 * target at the end, not a line per file (--verbose prints them; without a TTY every line is printed).
 */
import { formatBytes, formatDuration, printable } from '@relayer/common';
import { describeSkipped, type JobEvent } from '../job/job-events.js';
import { ackedBytes, JobTally, WAIT_SAID_AFTER_MS, type TargetTally } from './job-tally.js';
import { ProgressView } from './progress-view.js';

export type RenderMode = 'tty' | 'plain' | 'json';

export interface RenderOptions {
  mode: RenderMode;
  /** Only failures and the summary. */
  quiet?: boolean;
  /** On a TTY too, a line per confirmed file. */
  verbose?: boolean;
  out?: NodeJS.WritableStream;
  err?: NodeJS.WritableStream;
  /** Plain mode: gap between progress lines. Default 5s. */
  plainEveryMs?: number;
}

export interface Renderer {
  (event: JobEvent): void;
  /** Stops bars; call once the job is over (or the stream broke). */
  end(): void;
}

/** Files of a send up to which a TTY still gets a line per confirmed file. */
export const EACH_FILE_MAX = 10;

/** Failure lines a TTY gets before the rest are only counted (--verbose or --json list every one). */
export const FAILURES_SHOWN = 20;

/** Codes whose cure is usually on the network or the receiver: the line points at `relay status`. */
const SEE_STATUS = new Set(['UNREACHABLE', 'TIMEOUT', 'DISCONNECTED', 'AUTH', 'TLS']);

export function pickMode(json: boolean, stream: NodeJS.WriteStream = process.stderr): RenderMode {
  return json ? 'json' : stream.isTTY ? 'tty' : 'plain';
}

const count = (n: number): string => n.toLocaleString('en-US');
const files = (n: number): string => `${count(n)} file${n === 1 ? '' : 's'}`;

/** "pi1: 2,000 files confirmed (24.5 MiB) → pi1:/srv/relay-inbox/site", or what failed there. */
function targetLine(t: TargetTally): string {
  const where = t.landed ? ` → ${printable(t.landed.node)}:${printable(t.landed.dir)}` : '';
  if (t.failed === 0) return `${t.name}: ${files(t.confirmed)} confirmed (${formatBytes(t.confirmedBytes)})${where}`;
  const first = t.firstFailure ? ` (first: ${printable(t.firstFailure.name)}: ${t.firstFailure.code}: ${printable(t.firstFailure.message)})` : '';
  return `${t.name}: ${count(t.confirmed)} of ${files(t.files + t.unsendable)} confirmed, ${count(t.failed)} failed${first}`;
}

function releaseLine(e: Extract<JobEvent, { type: 'release' }>): string {
  const name = printable(e.release);
  switch (e.phase) {
    case 'staged':
      return `${e.target}: release ${name} ${e.id} staged: ${files(e.files ?? 0)} (${formatBytes(e.bytes ?? 0)}), ${count(e.linked ?? 0)} unchanged (hard-linked, not sent)`;
    case 'switched':
      return `${e.target}: ${name}/current → ${e.id}${e.previous ? ` (was ${e.previous})` : ''}`;
    case 'rolled-back':
      return `${e.target}: ${name}/current back to ${e.id}${e.previous ? ` (was ${e.previous})` : ''}`;
    case 'discarded':
      return `${e.target}: release ${name} ${e.id} discarded (not switched)`;
    default:
      return `${e.target}: release ${name} ${e.id} ${e.phase}`;
  }
}

function actionLine(e: Extract<JobEvent, { type: 'action' }>): string {
  const how = e.timedOut ? `killed at the timeout after ${formatDuration(e.durationMs)}` : e.signal ? `killed by ${e.signal}` : `exited ${e.exitCode}`;
  return `${e.ok ? '' : 'FAILED '}action ${printable(e.name)} on ${e.target}: ${how}${e.timedOut ? '' : ` in ${formatDuration(e.durationMs)}`}${e.ok ? '' : ' (ACTION_FAILED)'}`;
}

/** "2,000 files on each of pi1, pi2 (4,000 confirmed)". */
function summary(e: Extract<JobEvent, { type: 'done' }>, tally: JobTally): string {
  const names = tally.list.map((t) => t.name);
  const skipped = e.skipped ? `, ${count(e.skipped)} skipped (not regular files)` : '';
  // A job without files (a rollback) counts nodes.
  if (names.length === 0) return `${e.ok ? 'done' : 'FAILED'}: ${count(e.confirmed)} of ${count(e.confirmed + e.failed)} node(s) in ${formatDuration(e.elapsedMs)}`;
  if (!e.ok) return `FAILED: ${count(e.failed)} failed, ${count(e.confirmed)} confirmed${skipped}`;
  const on = names.length === 1 ? `on ${names[0]}` : `on each of ${names.join(', ')}`;
  return `done: ${files(tally.files)} ${on} (${count(e.confirmed)} confirmed), ${formatBytes(e.bytes)} in ${formatDuration(e.elapsedMs)}${skipped}`;
}

export function createRenderer(opts: RenderOptions): Renderer {
  const out = opts.out ?? process.stdout;
  const err = opts.err ?? process.stderr;
  const tally = new JobTally();
  const tty = opts.mode === 'tty' && !opts.quiet;
  let view: ProgressView | undefined;
  let lastPlain = 0;
  let failuresShown = 0;
  const waits = new Set<NodeJS.Timeout>();
  const plainEvery = opts.plainEveryMs ?? 5000;

  const print = (s: string): void => {
    if (view) view.print(s);
    else out.write(`${s}\n`);
  };

  const plainProgress = (): void => {
    const now = Date.now();
    if (opts.quiet || now - lastPlain < plainEvery) return;
    lastPlain = now;
    for (const t of tally.list) {
      const v = ackedBytes(t);
      const pct = t.bytes ? Math.floor((v * 100) / t.bytes) : 100;
      const fileCount = t.files > 1 ? ` ${count(t.confirmed)}/${files(t.files)}` : '';
      print(`progress ${t.name}: ${pct}%${fileCount} ${formatBytes(v)}/${formatBytes(t.bytes)} ${formatBytes(Math.round((v * 1000) / Math.max(1, now - t.startedAt)))}/s`);
    }
  };

  const render = ((e: JobEvent): void => {
    if (opts.mode === 'json') {
      if (!(opts.quiet && (e.type === 'progress' || e.type === 'start' || e.type === 'target'))) out.write(`${JSON.stringify(e)}\n`);
      return;
    }
    const t = tally.add(e);
    switch (e.type) {
      case 'queued':
        if (!opts.quiet) print(`sending ${files(e.files)} (${formatBytes(e.bytes)}) to ${e.targets.join(', ')}`);
        if (e.skipped.length) {
          // Every entry not sent is said (the send succeeds without them); the first few by name and kind.
          const shown = e.skipped.slice(0, 10).map((k) => `${printable(k.name)} (${k.kind})`).join(', ');
          print(`skipped ${describeSkipped(e.skipped)} (not regular files, not sent): ${shown}${e.skipped.length > 10 ? ', …' : ''}`);
        }
        if (tty) {
          view = new ProgressView({ err: err as NodeJS.WriteStream, out });
          view.addTargets(tally.list);
        }
        break;
      case 'target':
        // Without bars, a target still down after WAIT_SAID_AFTER_MS is said once per change (a link that
        // is only connecting is not news); with bars, its row says it.
        if (!tty && !opts.quiet && t && (e.state === 'disconnected' || e.state === 'stale')) {
          const since = t.linkSince;
          const timer = setTimeout(() => {
            waits.delete(timer);
            if (t.link !== e.state || t.linkSince !== since || t.finishedAt !== undefined) return;
            print(`waiting for ${e.target}: ${e.state}${t.linkReason ? `: ${printable(t.linkReason)}` : ''} (see 'relay status'; the send gives up after --timeout without progress)`);
          }, WAIT_SAID_AFTER_MS);
          timer.unref();
          waits.add(timer);
        }
        break;
      case 'progress':
        if (opts.mode === 'plain') plainProgress();
        break;
      case 'received':
        if (!opts.quiet && (!tty || opts.verbose || tally.files <= EACH_FILE_MAX)) {
          const how = e.unchanged ? ' (unchanged, no bytes sent)' : e.resumedFrom > 0 ? ` (resumed at ${formatBytes(e.resumedFrom)})` : '';
          // Where the file is, as the node's host sees it: node:path (the receiver's own path without --display-dir).
          const where = `${printable(e.node ?? e.target)}:${printable(e.displayPath ?? e.path)}`;
          print(`received ${printable(e.name)} ${e.size} bytes sha256=${e.sha256} on ${e.target} → ${where} in ${formatDuration(e.elapsedMs)}${how}`);
        }
        break;
      case 'failed':
        if (tty && !opts.verbose && ++failuresShown > FAILURES_SHOWN) break;
        print(`FAILED ${printable(e.name)} to ${e.target}: ${e.code}: ${printable(e.message)}${SEE_STATUS.has(e.code) ? ` (see 'relay status')` : ''}`);
        break;
      case 'release':
        if (e.phase === 'failed') print(`FAILED release ${printable(e.release)} ${e.id} on ${e.target}: ${e.code ?? 'IO'}: ${printable(e.message ?? '')}`);
        else if (!opts.quiet || e.phase !== 'staged') print(releaseLine(e));
        break;
      case 'action':
        print(actionLine(e));
        // The node's own words, each line under the node's name (made harmless by the receiver, and again here).
        if (e.output && (!e.ok || !opts.quiet)) for (const line of e.output.replace(/\n$/, '').split('\n')) print(`${e.target}| ${printable(line)}`);
        break;
      case 'done':
        render.end();
        // A send of several files gets a line per target: how many arrived there, and where.
        if (tally.list.some((x) => x.files + x.unsendable > 1)) {
          for (const x of tally.list) if (!opts.quiet || x.failed > 0) out.write(`${targetLine(x)}\n`);
        }
        if (tty && !opts.verbose && failuresShown > FAILURES_SHOWN) {
          out.write(`… ${count(failuresShown - FAILURES_SHOWN)} more failures not shown (--verbose or --json lists every one)\n`);
        }
        out.write(`${summary(e, tally)}\n`);
        break;
    }
  }) as Renderer;
  render.end = () => {
    for (const timer of waits) clearTimeout(timer);
    waits.clear();
    view?.stop();
    view = undefined;
  };
  return render;
}
