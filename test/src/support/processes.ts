/**
 * The project's binaries as child processes. One spawn helper for all of them: stderr JSON log lines are
 * parsed, kept and emitted as "log" events (tests wait on what a process says, not on time), and the child
 * is killed (by its pid) after the test if it is still running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { track, waitFor } from './lifecycle.js';
import { launchFlags } from './launch-flags.js';
import { TOKEN } from './peers.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = {
  receiver: path.join(REPO_ROOT, 'node_modules/.bin/relay-receiver'),
  relay: path.join(REPO_ROOT, 'node_modules/.bin/relay'),
  sender: path.join(REPO_ROOT, 'node_modules/.bin/relay-sender'),
};

export interface LogLine {
  level?: number;
  msg: string;
  [key: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running bin with its parsed stderr. */
export class LoggedProcess extends EventEmitter {
  readonly logs: LogLine[] = [];
  readonly exited: Promise<Exit>;
  private text = '';
  private out = '';

  constructor(readonly child: ChildProcess) {
    super();
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    child.stdout?.on('data', (d) => (this.out += d));
    createInterface({ input: child.stderr! }).on('line', (line) => {
      this.text += `${line}\n`;
      let entry: LogLine;
      try {
        entry = JSON.parse(line) as LogLine;
      } catch {
        return;
      }
      this.logs.push(entry);
      this.emit('log', entry);
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  stderr(): string {
    return this.text;
  }

  stdout(): string {
    return this.out;
  }

  /** Waits for a log line whose msg is `msg` (and, optionally, more conditions); rejects if the process exits first. */
  waitLog(msg: string, match: (l: LogLine) => boolean = () => true, timeoutMs = 20_000): Promise<LogLine> {
    const seen = this.logs.find((l) => l.msg === msg && match(l));
    if (seen) return Promise.resolve(seen);
    return Promise.race([
      waitFor<[LogLine]>(this, 'log', (l) => l.msg === msg && match(l), timeoutMs).then(([l]) => l),
      this.exited.then(({ code, signal }) => {
        throw new Error(`${path.basename(String(this.child.spawnargs[1]))} exited (${code ?? signal}) before logging "${msg}": ${this.text}`);
      }),
    ]);
  }

  /** Sends `signal`; one that does not end the process within 10 s is followed by SIGKILL. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<Exit> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    this.child.kill(signal);
    if (signal === 'SIGKILL') return this.exited;
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Spawns one of the project's bins with node and the flags it starts itself with (or a node script, or `-e`, with none);
 * killed after the test unless it exited.
 */
export function spawnBin(
  bin: string, args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string; stopSignal?: NodeJS.Signals } = {},
): LoggedProcess {
  const flags = Object.values(BIN).includes(bin) ? launchFlags(bin) : [];
  const child = spawn(process.execPath, [...flags, bin, ...args], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = new LoggedProcess(child);
  track(() => p.kill(opts.stopSignal ?? 'SIGKILL'));
  return p;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs one of the project's bins to completion (bounded by timeoutMs). */
export async function runBin(bin: string, args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return untilExit(spawnBin(bin, args, opts), opts.timeoutMs ?? 60_000);
}

/** Waits for a spawned process to end (killed after timeoutMs) and returns its exit and output. */
export async function untilExit(p: LoggedProcess, timeoutMs: number): Promise<CliResult> {
  const timer = setTimeout(() => void p.kill(), timeoutMs);
  await new Promise<void>((resolve, reject) => {
    p.child.once('error', reject);
    p.child.once('close', () => resolve());
  });
  clearTimeout(timer);
  const { code, signal } = await p.exited;
  return { code, signal, stdout: p.stdout(), stderr: p.stderr() };
}

/** The unprivileged uid (and gid) tests run a bin as, where root would bypass a permission. */
export const NOBODY = 65534;

/**
 * Runs a bin as uid/gid 65534 with no supplementary groups (the tests run as root), with the test token
 * in RELAY_TOKEN; bounded by timeoutMs.
 */
export function runAsNobody(bin: string, args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 20_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('setpriv', ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', process.execPath, bin, ...args], {
      env: { ...process.env, RELAY_TOKEN: TOKEN, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    track(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A port that was free a moment ago on 127.0.0.1 (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
