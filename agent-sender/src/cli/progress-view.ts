/**
 * The progress bars of a send on a terminal: one row per target, in the order the header names them,
 * drawn by cli-progress on stderr, while result lines go to stdout. When stdout is the same terminal, a
 * result line is written where the bars are (the bars cleared first, then drawn again below it), so a
 * line is never cut, never lands inside a bar, and no bar is left drawn twice.
 *
 * cli-progress turns the terminal's line wrap off while it draws (`linewrap: false`, its default) and
 * prints its own log lines through that, which cuts every long line at the last column; here line wrap
 * stays on, every bar row is fitted to the width on each frame, and the bars are drawn on every frame
 * (`forceRedraw`), so rows written over by a result line come back.
 */
import { clearScreenDown } from 'node:readline';
import cliProgress from 'cli-progress';
import { formatBytes, formatDuration } from '@relayer/common';
import { ackedBytes, WAIT_SAID_AFTER_MS, type TargetTally } from './job-tally.js';

export interface ProgressViewOptions {
  /** Where the bars go (a TTY). */
  err: NodeJS.WriteStream;
  /** Where result lines go; when it is the same terminal they are written between frames. */
  out: NodeJS.WritableStream;
}

const BAR_MIN = 10;
const BAR_MAX = 40;

const count = (n: number): string => n.toLocaleString('en-US');

/** One target's row, at most `width` columns: the parts that do not fit are left out, least useful first. */
export function formatRow(t: TargetTally, nameWidth: number, width: number, now = Date.now()): string {
  const name = shorten(t.name, nameWidth).padEnd(nameWidth);
  const acked = ackedBytes(t);
  const took = (t.finishedAt ?? now) - t.startedAt;
  if (t.finishedAt === undefined && t.link !== 'connected' && now - t.linkSince >= WAIT_SAID_AFTER_MS) {
    const why = t.linkReason ? `: ${t.linkReason}` : '';
    return fit(`${name} waiting, ${t.link} for ${formatDuration(now - t.linkSince)}${why} (see 'relay status')`, width);
  }
  const progress = t.bytes > 0 ? Math.min(1, acked / t.bytes) : t.finishedAt !== undefined ? 1 : 0;
  const parts = [
    `${Math.floor(progress * 100)}%`.padStart(4),
    t.files > 1 ? `${count(t.confirmed)}/${count(t.files)} files` : '',
    t.finishedAt !== undefined ? formatBytes(t.confirmedBytes) : `${formatBytes(acked)}/${formatBytes(t.bytes)}`,
    took > 0 ? `${formatBytes(Math.round((acked * 1000) / took))}/s` : '',
    t.failed > 0 ? `${count(t.failed)} FAILED` : '',
    t.finishedAt !== undefined ? `${t.failed > 0 ? 'ended after' : 'done in'} ${formatDuration(took)}` : eta(acked, t.bytes, took),
  ];
  // Left out in this order while the row is too wide for a bar of BAR_MIN: ETA, rate, files; then the bar.
  const order = [5, 3, 1];
  for (let k = 0; ; k++) {
    const rest = parts.filter(Boolean).join(' ');
    const room = width - name.length - rest.length - 4; // two spaces and the brackets
    if (room >= BAR_MIN) {
      const size = Math.min(BAR_MAX, room);
      const bar = cliProgress.Format.BarFormat(progress, {
        barsize: size, barCompleteString: '█'.repeat(size), barIncompleteString: '░'.repeat(size), barGlue: '',
      } as cliProgress.Options);
      return `${name} [${bar}] ${rest}`;
    }
    if (k === order.length) return fit(`${name} ${rest}`, width);
    parts[order[k]!] = '';
  }
}

/** `s` in at most `n` characters, the middle left out ("http://1…:42987"): both ends tell targets apart. */
function shorten(s: string, n: number): string {
  if (s.length <= n) return s;
  const head = Math.ceil((n - 1) / 2);
  return `${s.slice(0, head)}…${s.slice(s.length - (n - 1 - head))}`;
}

function eta(acked: number, total: number, took: number): string {
  if (acked <= 0 || took <= 0 || acked >= total) return '';
  return `ETA ${formatDuration(((total - acked) * took) / acked)}`;
}

function fit(s: string, width: number): string {
  return s.length <= width ? s : `${s.slice(0, Math.max(0, width - 1))}…`;
}

export class ProgressView {
  private readonly bars: cliProgress.MultiBar;
  private readonly rows = new Map<string, cliProgress.SingleBar>();
  private readonly pending: string[] = [];
  private readonly sameTerminal: boolean;
  private nameWidth = 4;
  private stopped = false;

  constructor(private readonly opts: ProgressViewOptions) {
    this.sameTerminal = Boolean((opts.out as NodeJS.WriteStream).isTTY);
    this.bars = new cliProgress.MultiBar({
      stream: opts.err,
      format: (_options, _params, payload: { tally: TargetTally }) => formatRow(payload.tally, this.nameWidth, this.width()),
      hideCursor: true, clearOnComplete: false, linewrap: true, forceRedraw: true, fps: 10, gracefulExit: false,
    });
    this.bars.on('redraw-pre', () => this.flush());
  }

  /** One row per target, in this order, before anything is sent: a target that never gets a byte still shows. */
  addTargets(tallies: TargetTally[]): void {
    this.nameWidth = Math.min(24, Math.max(4, ...tallies.map((t) => t.name.length)));
    for (const t of tallies) this.rows.set(t.name, this.bars.create(1, 0, { tally: t }));
  }

  /** A result line: straight to stdout when that is not this terminal, else between two frames. */
  print(line: string): void {
    if (!this.sameTerminal || this.stopped) {
      this.opts.out.write(`${line}\n`);
      return;
    }
    this.pending.push(line);
  }

  /** Draws the final rows (after any pending lines) and gives the terminal back. Once. */
  stop(): void {
    if (this.stopped) return;
    this.bars.update();
    this.stopped = true;
    this.bars.stop();
  }

  private width(): number {
    return Math.max(20, (this.opts.err.columns || 80) - 1);
  }

  /** Runs with the cursor at the first bar row: clears the bars, writes the lines; the bars are drawn after. */
  private flush(): void {
    if (this.pending.length === 0) return;
    clearScreenDown(this.opts.err);
    this.opts.out.write(this.pending.map((l) => `${l}\n`).join(''));
    this.pending.length = 0;
  }
}
