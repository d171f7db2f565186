/**
 * The fault suite's harness: a cleanup stack per scenario (processes, mounts, namespaces, folders are
 * undone newest first, even when the scenario failed), random source files, shell commands, and the
 * figures each scenario prints (also collected into one JSON file docs/reliability.md quotes).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findExecutable } from '../../support/executable.js';
import { randomFile as randomFileIn, sha256File, type RandomFile } from '../../support/files.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;
export const TOKEN = 'faults-token-' + randomBytes(12).toString('hex');
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
export const BIN = {
  receiver: path.join(REPO_ROOT, 'node_modules/.bin/relay-receiver'),
  sender: path.join(REPO_ROOT, 'node_modules/.bin/relay-sender'),
  relay: path.join(REPO_ROOT, 'node_modules/.bin/relay'),
};
/** Every figure printed is also appended here as one JSON line. */
export const FIGURES_FILE = process.env.FAULTS_FIGURES ?? path.join(REPO_ROOT, 'test/dist/faults-figures.jsonl');

type Undo = () => unknown;

/** Things to undo after a scenario, newest first; an undo that fails is reported, never hides the rest. */
export class Cleanup {
  private readonly stack: Array<{ label: string; undo: Undo }> = [];

  add(label: string, undo: Undo): void {
    this.stack.push({ label, undo });
  }

  async run(): Promise<void> {
    while (this.stack.length) {
      const { label, undo } = this.stack.pop()!;
      try {
        await undo();
      } catch (err) {
        process.stdout.write(`      [cleanup] ${label} failed: ${(err as Error).message}\n`);
      }
    }
  }
}

/** Prints a scenario's figure in a form docs/reliability.md can quote, and records it. */
export async function figure(scenario: string, text: string, data: Record<string, unknown> = {}): Promise<void> {
  process.stdout.write(`      FIGURE ${scenario}: ${text}\n`);
  await mkdir(path.dirname(FIGURES_FILE), { recursive: true });
  await appendFile(FIGURES_FILE, JSON.stringify({ scenario, text, ...data, at: new Date().toISOString() }) + '\n');
}

export async function tmpDir(cleanup: Cleanup, prefix = 'rlyf-', base = os.tmpdir()): Promise<string> {
  const dir = await mkdtemp(path.join(base, prefix));
  cleanup.add(`rm ${dir}`, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

export type SourceFile = RandomFile;

/** Writes `size` random bytes to `file` (parents created) and returns its sha256. */
export function randomFile(file: string, size: number): Promise<SourceFile> {
  return randomFileIn(path.dirname(file), size, path.basename(file));
}

export { sha256File };

/** Regular files below dir (relative '/'-paths), skipping the names in `skip` at any depth. */
export async function listFiles(dir: string, skip: ReadonlySet<string> = new Set()): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(path.join(dir, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (skip.has(e.name)) continue;
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) out.push(r);
    }
  };
  await walk('');
  return out.sort();
}

export interface ShResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The Debian package of each host tool the suite runs, for the message when one is missing. */
const PACKAGE_OF: Record<string, string> = {
  ip: 'iproute2', tc: 'iproute2', mount: 'mount', umount: 'mount', losetup: 'mount', lsblk: 'util-linux',
  'mkfs.ext4': 'e2fsprogs', truncate: 'coreutils', cat: 'coreutils',
};

/** A host tool by absolute path, found as the system finds it (PATH, then the sbin folders). */
export function hostTool(cmd: string): string {
  if (cmd.includes('/')) return cmd;
  const found = findExecutable(cmd);
  if (!found) throw new Error(`${cmd} is not installed here (Debian package ${PACKAGE_OF[cmd] ?? 'unknown'}): the fault suite needs it`);
  return found;
}

/** Runs a command to completion (killed after timeoutMs). */
export function sh(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<ShResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(hostTool(cmd), args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Like sh, but throws with the command's stderr when it does not exit 0. */
export async function shOk(cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await sh(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** Polls `check` until it returns a truthy value; fails with `what` after timeoutMs. */
export async function waitUntil<T>(what: string, check: () => Promise<T> | T, timeoutMs = 20_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await delay(everyMs);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A random integer in [lo, hi]. */
export function randInt(lo: number, hi: number): number {
  return lo + Math.floor(Math.random() * (hi - lo + 1));
}

export interface ProcStats {
  rssBytes: number;
  fds: number;
}

/** Resident memory and open descriptors of a live process, from /proc. */
export async function procStats(pid: number): Promise<ProcStats> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? NaN);
  const fds = (await readdir(`/proc/${pid}/fd`)).length;
  return { rssBytes: kb * 1024, fds };
}

/** Descriptions of a process's open fds (for a failure message). */
export async function fdTargets(pid: number): Promise<string[]> {
  const names = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  return Promise.all(names.map((n) => readlink(`/proc/${pid}/fd/${n}`).catch(() => '?')));
}

/** Samples a process's RSS and fds every `everyMs` until stopped; keeps the maxima. */
export class StatsSampler {
  maxRss = 0;
  maxFds = 0;
  samples = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly pids: () => number[], private readonly everyMs = 250) {}

  start(): this {
    this.timer = setInterval(() => void this.sample(), this.everyMs);
    return this;
  }

  async sample(): Promise<void> {
    for (const pid of this.pids()) {
      try {
        const s = await procStats(pid);
        this.maxRss = Math.max(this.maxRss, s.rssBytes);
        this.maxFds = Math.max(this.maxFds, s.fds);
        this.samples++;
      } catch { /* the process is restarting */ }
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export const isRoot = (): boolean => process.getuid?.() === 0;

export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

let shared: Promise<SourceFile> | undefined;
let sharedDir: string | undefined;

/** One 1 GiB random source shared by the scenarios of this run (removed when the process exits). */
export function oneGiBSource(): Promise<SourceFile> {
  shared ??= (async () => {
    sharedDir = await mkdtemp(path.join(os.tmpdir(), 'rlyf-src-'));
    process.once('exit', () => rmSync(sharedDir!, { recursive: true, force: true }));
    return randomFile(path.join(sharedDir, 'one-gib.bin'), Number(process.env.FAULTS_BIG_MB ?? 1024) * MiB);
  })();
  return shared;
}
