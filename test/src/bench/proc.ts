/**
 * Child processes of the bench and what they cost: CPU-seconds (utime+stime) and peak RSS. Long-lived
 * children (receivers, the sender agent, pipe servers) are read from /proc between runs; short-lived ones
 * (`relay send`, the pipe sender) report their own rusage on exit through rusage-hook.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const bin = (name: string): string => path.join(ROOT, 'node_modules/.bin', name);
export const DIST = path.dirname(fileURLToPath(import.meta.url));
const HOOK = pathToFileURL(path.join(DIST, 'rusage-hook.js')).href;
const TICKS = 100; // USER_HZ on Linux

export interface Cost {
  cpuSec: number;
  /** CPU of the process's main thread alone (its event loop), where it was measured (long-lived children). */
  mainCpuSec?: number;
  peakRssMB: number;
}

/** utime + stime in seconds from a /proc …/stat line (fields after the ")" of comm: utime #14, stime #15). */
function statCpuSec(stat: string): number {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS;
}

const children = new Set<ChildProcess>();

/** Every child the bench started and that is still running, for the final cleanup. */
export function killAll(signal: NodeJS.Signals = 'SIGTERM'): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
}

export function waitExit(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** A long-lived child: CPU and peak RSS read from /proc, the peak reset between runs. */
export class Daemon {
  private lines: AsyncIterator<string> | undefined;

  constructor(readonly name: string, readonly child: ChildProcess, readonly ready: Record<string, unknown>, lines?: AsyncIterator<string>) {
    this.lines = lines;
  }

  /** For a child that takes JSON commands on stdin: sends one, resolves with its next JSON line. */
  async command(cmd: object): Promise<Record<string, unknown>> {
    this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
    const next = await this.lines!.next();
    if (next.done) throw new Error(`${this.name} exited`);
    return JSON.parse(next.value) as Record<string, unknown>;
  }

  get pid(): number {
    return this.child.pid!;
  }

  cpuSec(): number {
    return statCpuSec(readFileSync(`/proc/${this.pid}/stat`, 'utf8'));
  }

  /** The main thread's CPU (its task id is the pid): the event loop that must keep up with the link. */
  mainCpuSec(): number {
    return statCpuSec(readFileSync(`/proc/${this.pid}/task/${this.pid}/stat`, 'utf8'));
  }

  /** Peak RSS since the last resetPeak (VmHWM), in MB. */
  peakRssMB(): number {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  }

  /** Resets VmHWM to the current RSS (clear_refs 5), so the next peak belongs to the next run. */
  resetPeak(): void {
    try {
      writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
    } catch { /* not permitted: the peak then covers the whole life of the process */ }
  }

  /** Starts a cost window; the returned function ends it. */
  window(): () => Cost {
    this.resetPeak();
    const [cpu0, main0] = [this.cpuSec(), this.mainCpuSec()];
    return () => ({ cpuSec: this.cpuSec() - cpu0, mainCpuSec: this.mainCpuSec() - main0, peakRssMB: this.peakRssMB() });
  }

  async stop(): Promise<void> {
    this.child.stdin?.end();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    await waitExit(this.child);
  }
}

/**
 * The Node options the image runs every Relayer process with (Dockerfile: ENV NODE_OPTIONS); the bench
 * runs the agents and `relay` as deployed. With them a sender agent moving 10,000 small files peaks at
 * ~110 MB RSS instead of 150–175 MB (see the Dockerfile for why).
 */
export const RELAY_NODE_OPTIONS = '--max-semi-space-size=2 --max-old-space-size=1024';

/**
 * The receiver's Node options in swarm-stack.yml (its service's NODE_OPTIONS), which the bench gives its
 * receivers: semi-spaces of 4 MiB. A receiver taking small files allocates ~20 KB per file (promises, file
 * handles, path strings); with 2 MiB semi-spaces it scavenges twice as often and spends ~25% of its main
 * thread in the collector, which made 10,000 small files ~12% slower on tmpfs for 6 MB less RSS. Its peak
 * is set by big files (~120 MB, the websocket's per-message buffers), which the semi-spaces barely move.
 */
export const RECEIVER_NODE_OPTIONS = '--max-semi-space-size=4 --max-old-space-size=1024';

export { launchFlags } from '../support/launch-flags.js';

/**
 * Starts a node script whose JSON log lines (on `stream`) are watched; resolves with the first line for
 * which `isReady` holds.
 */
export function startDaemon(name: string, args: string[], opts: {
  env?: NodeJS.ProcessEnv; stream?: 'stdout' | 'stderr'; isReady: (line: Record<string, unknown>) => boolean; nodeArgs?: string[];
  /** Takes commands on stdin and answers on `stream` (see Daemon.command). */
  commands?: boolean;
}): Promise<Daemon> {
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), ...args], {
    env: { ...process.env, ...opts.env }, stdio: [opts.commands ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const stream = opts.stream ?? 'stderr';
  // The other stream is drained so a chatty child never blocks on a full pipe.
  (stream === 'stderr' ? child.stdout : child.stderr)!.resume();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 20s`)), 20_000);
    child.once('exit', (code) => reject(new Error(`${name} exited with ${String(code)} before it was ready`)));
    const rl = createInterface({ input: child[stream]! });
    if (opts.commands) {
      // Answers are read in order through one iterator; the first line must be the ready line.
      const lines = rl[Symbol.asyncIterator]();
      void lines.next().then((first) => {
        clearTimeout(timer);
        const entry = first.done ? {} : JSON.parse(first.value) as Record<string, unknown>;
        if (opts.isReady(entry)) resolve(new Daemon(name, child, entry, lines));
        else reject(new Error(`${name}: unexpected first line`));
      }, reject);
      return;
    }
    const onLine = (line: string): void => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (opts.isReady(entry)) {
        clearTimeout(timer);
        // Once ready, its log is drained unread: parsing a receiver's line per file would take the bench's
        // own CPU from the methods it times. Its last 4 KB are kept, to show if it dies. (rl.close() paused
        // the stream: a 'data' listener alone would not restart it, and a daemon blocked on a full stderr
        // pipe stalls the bench.)
        rl.off('line', onLine);
        rl.close();
        let tail = '';
        child[stream]!.setEncoding('utf8').on('data', (d: string) => void (tail = (tail + d).slice(-4096))).resume();
        child.once('exit', (code, signal) => {
          if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGKILL') process.stderr.write(`bench: ${name} exited (${String(code ?? signal)}); its last output:\n${tail}\n`);
        });
        resolve(new Daemon(name, child, entry));
      }
    };
    rl.on('line', onLine);
  });
}

export interface RunResult extends Cost {
  code: number | null;
  stdout: string;
  stderr: string;
}

let runSeq = 0;

/** Runs a node script to completion with the rusage hook preloaded; its cost comes from the hook. */
export async function runNode(args: string[], env: NodeJS.ProcessEnv = {}, rusageDir: string): Promise<RunResult> {
  const file = path.join(rusageDir, `rusage-${process.pid}-${++runSeq}.json`);
  const child = spawn(process.execPath, ['--import', HOOK, ...args], {
    env: { ...process.env, ...env, BENCH_RUSAGE_FILE: file }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => void (stdout = (stdout + d).slice(-1_000_000)));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => void (stderr = (stderr + d).slice(-100_000)));
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  children.delete(child);
  let cost: Cost = { cpuSec: NaN, peakRssMB: NaN };
  try {
    cost = JSON.parse(await readFile(file, 'utf8')) as Cost;
    await rm(file, { force: true });
  } catch { /* the child died before its exit hook ran */ }
  return { code, stdout, stderr, ...cost };
}
