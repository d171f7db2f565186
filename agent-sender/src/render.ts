/**
 * Turns a job's event stream into what a person or a script reads: progress bars per target on a TTY,
 * plain lines every few seconds otherwise (Jenkins), or JSON lines. Results go to stdout, bars to stderr.
 */
import cliProgress from 'cli-progress';
import { formatBytes, formatDuration, formatRate } from '@relayer/common';
import { describeSkipped, type JobEvent } from './job-events.js';

export type RenderMode = 'tty' | 'plain' | 'json';

export interface RenderOptions {
  mode: RenderMode;
  quiet?: boolean;
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

export function pickMode(json: boolean, stream: NodeJS.WriteStream = process.stderr): RenderMode {
  return json ? 'json' : stream.isTTY ? 'tty' : 'plain';
}

interface TargetTotals {
  total: number;
  done: number;
  /** Acked bytes of transfers still running, by file name. */
  running: Map<string, number>;
  startedAt: number;
}

/** Text from a receiver is shown, never interpreted: control characters (terminal escapes) are replaced. */
function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

export function createRenderer(opts: RenderOptions): Renderer {
  const out = opts.out ?? process.stdout;
  const err = opts.err ?? process.stderr;
  const line = (s: string): void => void out.write(`${s}\n`);
  const targets = new Map<string, TargetTotals>();
  let bars: cliProgress.MultiBar | undefined;
  const barOf = new Map<string, cliProgress.SingleBar>();
  let lastPlain = 0;
  const plainEvery = opts.plainEveryMs ?? 5000;

  const acked = (t: TargetTotals): number => t.done + [...t.running.values()].reduce((a, b) => a + b, 0);

  const update = (target: string): void => {
    const t = targets.get(target);
    if (!t) return;
    const value = acked(t);
    if (opts.mode === 'tty' && !opts.quiet) {
      bars ??= new cliProgress.MultiBar({
        stream: err as NodeJS.WriteStream,
        format: ' {target} [{bar}] {percentage}% | {amount} | {rate} | ETA {eta_formatted}',
        hideCursor: true, clearOnComplete: false, autopadding: true, etaBuffer: 20, fps: 10,
      }, cliProgress.Presets.shades_classic);
      let bar = barOf.get(target);
      if (!bar) {
        bar = bars.create(Math.max(t.total, 1), 0, { target, amount: '', rate: '' });
        barOf.set(target, bar);
      }
      bar.update(t.total === 0 ? 1 : value, {
        amount: `${formatBytes(value)}/${formatBytes(t.total)}`,
        rate: formatRate(value, Date.now() - t.startedAt),
      });
    }
  };

  const plainProgress = (): void => {
    const now = Date.now();
    if (opts.quiet || now - lastPlain < plainEvery) return;
    lastPlain = now;
    for (const [name, t] of targets) {
      const v = acked(t);
      const pct = t.total ? Math.floor((v * 100) / t.total) : 100;
      line(`progress ${name}: ${pct}% ${formatBytes(v)}/${formatBytes(t.total)} ${formatRate(v, now - t.startedAt)}`);
    }
  };

  const log = (s: string): void => {
    if (bars) bars.log(`${s}\n`);
    else line(s);
  };

  const render = ((e: JobEvent): void => {
    if (opts.mode === 'json') {
      if (!(opts.quiet && (e.type === 'progress' || e.type === 'start'))) line(JSON.stringify(e));
      return;
    }
    switch (e.type) {
      case 'queued':
        for (const target of e.targets) targets.set(target, { total: e.bytes, done: 0, running: new Map(), startedAt: Date.now() });
        if (!opts.quiet) log(`sending ${e.files} file${e.files === 1 ? '' : 's'} (${formatBytes(e.bytes)}) to ${e.targets.join(', ')}`);
        if (e.skipped.length) {
          // Every entry not sent is said (the send succeeds without them); the first few by name and kind.
          const shown = e.skipped.slice(0, 10).map((k) => `${printable(k.name)} (${k.kind})`).join(', ');
          log(`skipped ${describeSkipped(e.skipped)} (not regular files, not sent): ${shown}${e.skipped.length > 10 ? ', …' : ''}`);
        }
        break;
      case 'start':
        targets.get(e.target)?.running.set(e.name, 0);
        break;
      case 'progress':
        targets.get(e.target)?.running.set(e.name, e.acked);
        if (opts.mode === 'tty') update(e.target);
        else plainProgress();
        break;
      case 'received': {
        const t = targets.get(e.target);
        if (t) {
          t.running.delete(e.name);
          t.done += e.size;
          update(e.target);
        }
        if (!opts.quiet) {
          const how = e.unchanged ? ' (unchanged, no bytes sent)' : e.resumedFrom > 0 ? ` (resumed at ${formatBytes(e.resumedFrom)})` : '';
          // Where the file is, as the node's host sees it: node:path (the receiver's own path without --display-dir).
          const where = `${printable(e.node ?? e.target)}:${printable(e.displayPath ?? e.path)}`;
          log(`received ${e.name} ${e.size} bytes sha256=${e.sha256} on ${e.target} → ${where} in ${formatDuration(e.elapsedMs)}${how}`);
        }
        break;
      }
      case 'failed':
        targets.get(e.target)?.running.delete(e.name);
        log(`FAILED ${printable(e.name)} to ${e.target}: ${e.code}: ${printable(e.message)}`);
        break;
      case 'done':
        render.end();
        line(e.ok
          ? `done: ${e.confirmed} confirmed, ${formatBytes(e.bytes)} in ${formatDuration(e.elapsedMs)}${e.skipped ? `, ${e.skipped} skipped (not regular files)` : ''}`
          : `FAILED: ${e.failed} failed, ${e.confirmed} confirmed${e.skipped ? `, ${e.skipped} skipped (not regular files)` : ''}`);
        break;
    }
  }) as Renderer;
  render.end = () => {
    // MultiBar.log() buffers until the next redraw and stop() does not flush it: redraw first.
    bars?.update();
    bars?.stop();
    bars = undefined;
  };
  return render;
}
