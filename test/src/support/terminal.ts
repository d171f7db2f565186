/**
 * A bin run on a real pseudo-terminal of a given size (util-linux `script`), and the screen it leaves, as
 * a terminal emulator (@xterm/headless) shows it: what a person at that terminal reads at the end, with
 * line wrap, cursor moves and clears applied.
 */
import { spawn } from 'node:child_process';
import xterm from '@xterm/headless';
import { findExecutable } from './executable.js';
import { track } from './lifecycle.js';

export interface TerminalRun {
  code: number | null;
  /** Every row the terminal holds at the end (scrollback first), trailing blanks trimmed. */
  screen: string[];
  /** The same with each line the terminal wrapped joined back into one. */
  lines: string[];
  /** What the program wrote to the terminal, escapes and all. */
  raw: string;
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export async function runOnTerminal(
  bin: string, args: string[],
  opts: { cols: number; rows?: number; env?: Record<string, string | undefined>; stdoutTo?: string; timeoutMs?: number },
): Promise<TerminalRun> {
  const rows = opts.rows ?? 40;
  const script = findExecutable('script');
  if (!script) throw new Error('script (util-linux, Debian package bsdutils) is needed to run a bin on a terminal');
  const command = [process.execPath, bin, ...args].map(shellQuote).join(' ');
  const redirect = opts.stdoutTo ? ` > ${shellQuote(opts.stdoutTo)}` : '';
  const child = spawn(script, ['-qfec', `stty cols ${opts.cols} rows ${rows}; exec ${command}${redirect}`, '/dev/null'], {
    env: { ...process.env, TERM: 'xterm-256color', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => chunks.push(d));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  });
  clearTimeout(timer);
  const raw = Buffer.concat(chunks).toString('utf8');
  const term = new xterm.Terminal({ cols: opts.cols, rows, scrollback: 100_000, allowProposedApi: true });
  await new Promise<void>((resolve) => term.write(raw, resolve));
  const buffer = term.buffer.active;
  const screen: string[] = [];
  const lines: string[] = [];
  for (let i = 0; i < buffer.length; i++) {
    const row = buffer.getLine(i)!;
    screen.push(row.translateToString(true));
    // A row the next one continues was full: its trailing blanks belong to the line.
    const text = buffer.getLine(i + 1)?.isWrapped ? row.translateToString(false) : row.translateToString(true);
    if (row.isWrapped && lines.length) lines[lines.length - 1] += text;
    else lines.push(text);
  }
  for (const list of [screen, lines]) while (list.length && list[list.length - 1] === '') list.pop();
  term.dispose();
  return { code, screen, raw, lines };
}
