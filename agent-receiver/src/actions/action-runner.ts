/**
 * Node actions: the executables in the receiver's --action-dir, run by name after a send or a switch.
 *
 * A sender only names an action; what runs is the receiver's own file, without a shell, with a clean
 * environment (a fixed PATH, the receiver user's HOME, and the RELAY_* values the caller passes: never the
 * receiver's own environment, which holds its token), in its own process group so that a timeout kills
 * whatever it started too. One run at a time per action: a second run of the same action waits.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readdir, realpath, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import {
  ACTION_NAME, createError, MAX_ACTION_OUTPUT, ErrorCode, quoteName, type ActionResult, type Logger,
} from '@relayer/common';

/** Output kept per run: the tail, in bytes, before control characters are made harmless. */
export const OUTPUT_TAIL_BYTES = 4096;
/** After SIGTERM at the timeout, how long the group has before SIGKILL. */
const KILL_GRACE_MS = 2000;
/** After the action exits, how long its output pipes may stay open (a daemon it left behind holds them). */
const PIPE_GRACE_MS = 2000;
const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ActionRunnerInit {
  /** The folder of actions; undefined: this receiver defines none. */
  dir: string | undefined;
  /** The receiver's root: an action resolving into it (a file a sender wrote) is not one. */
  root?: string;
  log: Logger;
  onRun?: (r: ActionResult) => void;
}

export interface RunOptions {
  timeoutMs: number;
}

export class ActionRunner {
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly running = new Set<number>();
  private closed = false;

  constructor(private readonly init: ActionRunnerInit) {}

  /** The real path of action `name`, or null when this receiver does not define it. */
  private async resolve(name: string): Promise<string | null> {
    const dir = this.init.dir;
    if (dir === undefined || !ACTION_NAME.test(name)) return null;
    try {
      const real = await realpath(path.join(dir, name));
      // A file senders can write is never an action, even if the folder links to it.
      const root = this.init.root === undefined ? undefined : await realpath(this.init.root);
      if (root !== undefined && isInside(real, root)) return null;
      const s = await stat(real);
      if (!s.isFile()) return null;
      await access(real, constants.X_OK);
      return real;
    } catch {
      return null;
    }
  }

  async has(name: string): Promise<boolean> {
    return (await this.resolve(name)) !== null;
  }

  /** Names of the actions defined here (for status). */
  async names(): Promise<string[]> {
    const dir = this.init.dir;
    if (dir === undefined) return [];
    const all = await readdir(dir).catch(() => [] as string[]);
    const out: string[] = [];
    for (const n of all.sort()) if (await this.has(n)) out.push(n);
    return out;
  }

  /** Runs action `name` once (after any run of it already going); NO_ACTION if it is not defined. */
  run(name: string, env: Record<string, string>, opts: RunOptions): Promise<ActionResult> {
    const prev = this.queues.get(name) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.runNow(name, env, opts));
    const tail = next.catch(() => undefined);
    this.queues.set(name, tail);
    void tail.then(() => { if (this.queues.get(name) === tail) this.queues.delete(name); });
    return next;
  }

  private async runNow(name: string, env: Record<string, string>, opts: RunOptions): Promise<ActionResult> {
    if (this.closed) throw createError(ErrorCode.DISCONNECTED, 'receiver is closing');
    const file = await this.resolve(name);
    if (file === null) throw createError(ErrorCode.NO_ACTION, `no action ${quoteName(name)} on this node`);
    const started = Date.now();
    const result = await this.spawnOnce(name, file, cleanEnv(env), opts.timeoutMs);
    const r: ActionResult = { ...result, name, durationMs: Date.now() - started };
    this.init.onRun?.(r);
    const status = r.ok ? 'ok' : r.timedOut ? 'timeout' : r.signal !== null ? `signal ${r.signal}` : `exit ${r.exitCode ?? '?'}`;
    this.init.log.info({ node: env.RELAY_NODE, action: name, status, durationMs: r.durationMs }, `action ${name}: ${status}`);
    return r;
  }

  private spawnOnce(name: string, file: string, env: Record<string, string>, timeoutMs: number): Promise<Omit<ActionResult, 'name' | 'durationMs'>> {
    return new Promise((resolve) => {
      const tail = new Tail(OUTPUT_TAIL_BYTES);
      let timedOut = false;
      let settled = false;
      let exit: { code: number | null; signal: string | null } | null = null;
      const child = spawn(file, [], {
        shell: false, detached: true, cwd: path.dirname(file), env, stdio: ['ignore', 'pipe', 'pipe'],
      });
      const pid = child.pid;
      if (pid !== undefined) this.running.add(pid);
      const killGroup = (signal: NodeJS.Signals): void => {
        if (pid === undefined) return;
        try { process.kill(-pid, signal); } catch { /* the group is gone */ }
      };
      const timers: NodeJS.Timeout[] = [];
      const finish = (extra?: string): void => {
        if (settled) return;
        settled = true;
        for (const t of timers) clearTimeout(t);
        if (pid !== undefined) this.running.delete(pid);
        // At the timeout the whole group goes. After a normal exit what it started is left alone: an action
        // that (re)starts a service in the background is a use, not a leak; only our ends of its pipes close.
        if (timedOut) killGroup('SIGKILL');
        child.stdout?.destroy();
        child.stderr?.destroy();
        if (extra) tail.push(Buffer.from(extra));
        const code = exit?.code ?? null;
        const signal = exit?.signal ?? null;
        resolve({ exitCode: code, signal, timedOut, output: tail.text(), ok: !timedOut && code === 0 });
      };
      child.stdout!.on('data', (b: Buffer) => tail.push(b));
      child.stderr!.on('data', (b: Buffer) => tail.push(b));
      let open = 2;
      const closedPipe = (): void => { if (--open === 0 && exit) finish(); };
      child.stdout!.on('close', closedPipe);
      child.stderr!.on('close', closedPipe);
      child.on('error', (err) => {
        exit = { code: null, signal: null };
        finish(`[relay: could not start action ${name}: ${err.message}]\n`);
      });
      child.on('exit', (code, signal) => {
        exit = { code, signal };
        if (open === 0) finish();
        else timers.push(setTimeout(() => finish(), PIPE_GRACE_MS).unref());
      });
      timers.push(setTimeout(() => {
        timedOut = true;
        tail.push(Buffer.from(`\n[relay: action ${name} timed out after ${timeoutMs} ms; its process group was killed]\n`));
        killGroup('SIGTERM');
        timers.push(setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS).unref());
      }, timeoutMs));
    });
  }

  /** Kills the process groups of running actions (their runs end as failed) and takes no new runs. */
  async close(): Promise<void> {
    this.closed = true;
    for (const pid of this.running) {
      try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
    }
    await Promise.all([...this.queues.values()]);
  }
}

/** Whether `p` is `dir` or below it (both real paths). */
export function isInside(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
}

function cleanEnv(vars: Record<string, string>): Record<string, string> {
  let user: { username: string; homedir: string } = { username: 'relay', homedir: '/' };
  try { user = userInfo(); } catch { /* no passwd entry (a container's arbitrary uid) */ }
  const env: Record<string, string> = {
    PATH: SAFE_PATH, HOME: user.homedir, USER: user.username, LOGNAME: user.username, LANG: 'C.UTF-8',
  };
  for (const [k, v] of Object.entries(vars)) {
    if (/^RELAY_[A-Z0-9_]+$/.test(k) && k !== 'RELAY_TOKEN') env[k] = v;
  }
  return env;
}

/** The last `max` bytes of a stream of output, as text safe to print on a terminal. */
export class Tail {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private dropped = false;

  constructor(private readonly max: number) {}

  push(b: Buffer): void {
    this.chunks.push(b);
    this.bytes += b.length;
    while (this.bytes - this.chunks[0]!.length >= this.max) {
      this.bytes -= this.chunks.shift()!.length;
      this.dropped = true;
    }
  }

  text(): string {
    let all = Buffer.concat(this.chunks);
    if (all.length > this.max) {
      all = all.subarray(all.length - this.max);
      this.dropped = true;
    }
    let text = harmless(all.toString('utf8'));
    if (text.length > MAX_ACTION_OUTPUT - 1) {
      text = text.slice(text.length - (MAX_ACTION_OUTPUT - 1));
      this.dropped = true;
    }
    return (this.dropped ? '…' : '') + text;
  }
}

/** Control characters (escape sequences, carriage returns, NULs) shown as visible escapes; newlines and tabs kept. */
export function harmless(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
