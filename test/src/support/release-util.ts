/**
 * Test support for releases (`relay send --release`, `relay releases`, `relay rollback`): the real `relay`
 * bin run to completion or streamed (its --json lines as events), source trees whose contents carry a
 * label, and what a receiver's `<dir>/<release>/` holds (current, complete releases, their manifests).
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { JobEvent } from '@relayer/agent-sender';
import { BIN, runBin, spawnBin, TOKEN, waitFor, type CliResult, type LoggedProcess } from './util.js';
import { untilExit } from './processes.js';

export const RELAY_ENV = { RELAY_TOKEN: TOKEN, RELAY_TOKEN_FILE: undefined, RELAY_LOG_LEVEL: undefined, RELAY_SOCKET: undefined };

/** A release id as the receivers make them: 20261204T031501123Z-a1b2c3. */
export const ID = /^\d{8}T\d{9}Z-[0-9a-f]{6}$/;

/** `relay <args>` (the real bin) to completion, with the test token in RELAY_TOKEN. */
export function relay(args: string[], opts: { env?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<CliResult> {
  return runBin(BIN.relay, args, { env: { ...RELAY_ENV, ...opts.env }, timeoutMs: opts.timeoutMs ?? 60_000 });
}

/** Parses `relay --json` stdout (one object per line). */
export function jsonLines(stdout: string): JobEvent[] {
  return stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as JobEvent);
}

export type ReleaseEvent = Extract<JobEvent, { type: 'release' }>;
export type ReceivedEvent = Extract<JobEvent, { type: 'received' }>;

export function releaseEvents(events: JobEvent[]): ReleaseEvent[] {
  return events.filter((e): e is ReleaseEvent => e.type === 'release');
}

export function receivedEvents(events: JobEvent[]): ReceivedEvent[] {
  return events.filter((e): e is ReceivedEvent => e.type === 'received');
}

/** The id of the release a `--json` step staged (the id of its release events; a rolled-back one names the release gone back to). */
export function stepId(events: JobEvent[]): string {
  const ids = [...new Set(releaseEvents(events).filter((e) => e.phase !== 'rolled-back').map((e) => e.id))];
  if (ids.length !== 1) throw new Error(`expected one release id in the step's events, got ${JSON.stringify(ids)}`);
  return ids[0]!;
}

/**
 * `relay <args> --json` streamed: each stdout line is emitted as an "event" as it arrives, so a test can
 * act in the middle of a step (kill a receiver after N files were received).
 */
export class StreamedRelay extends EventEmitter {
  readonly events: JobEvent[] = [];
  readonly proc: LoggedProcess;
  readonly result: Promise<CliResult>;

  constructor(args: string[], opts: { env?: Record<string, string | undefined>; timeoutMs?: number } = {}) {
    super();
    this.proc = spawnBin(BIN.relay, args, { env: { ...RELAY_ENV, ...opts.env } });
    createInterface({ input: this.proc.child.stdout! }).on('line', (line) => {
      let e: JobEvent;
      try {
        e = JSON.parse(line) as JobEvent;
      } catch {
        return;
      }
      this.events.push(e);
      this.emit('event', e);
    });
    this.result = untilExit(this.proc, opts.timeoutMs ?? 60_000);
  }

  /** Resolves once `count` events matching `match` were seen (rejects if the process exits first). */
  async waitEvents(match: (e: JobEvent) => boolean, count = 1, timeoutMs = 30_000): Promise<void> {
    let seen = this.events.filter(match).length;
    if (seen >= count) return;
    await Promise.race([
      waitFor<[JobEvent]>(this, 'event', (e) => match(e) && ++seen >= count, timeoutMs),
      this.result.then((r) => {
        throw new Error(`relay exited (${r.code ?? r.signal}) after ${seen} of ${count} events: ${r.stdout.slice(-2000)}${r.stderr.slice(-2000)}`);
      }),
    ]);
  }

  get running(): boolean {
    return this.proc.child.exitCode === null && this.proc.child.signalCode === null;
  }
}

/** Content of `name` in the release labelled `label`: the label first, so a reader tells the releases apart. */
export function labelled(label: string, name: string, pad = 0): string {
  return `${label} ${name}\n${pad > 0 ? 'x'.repeat(pad) + '\n' : ''}`;
}

/** `n` names spread over folders of 100: d00/f0000.txt … */
export function treeNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `d${String(Math.floor(i / 100)).padStart(2, '0')}/f${String(i).padStart(4, '0')}.txt`);
}

/** Writes every name under root with labelled(label, name, pad(name)). */
export async function writeTree(root: string, names: string[], label: string, pad: (name: string) => number = () => 0): Promise<void> {
  const dirs = new Set(names.map((n) => path.dirname(path.join(root, n))));
  for (const d of dirs) await mkdir(d, { recursive: true });
  for (let i = 0; i < names.length; i += 64) {
    await Promise.all(names.slice(i, i + 64).map((n) => writeFile(path.join(root, n), labelled(label, n, pad(n)))));
  }
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** `<dir>/<release>/current`'s target, or null when there is no current. */
export async function currentTarget(home: string): Promise<string | null> {
  try {
    return await readlink(path.join(home, 'current'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** The id `current` points at (its target must be `.releases/<id>`), or null. */
export async function currentId(home: string): Promise<string | null> {
  const target = await currentTarget(home);
  if (target === null) return null;
  const m = /^\.releases\/(.+)$/.exec(target);
  if (!m || !ID.test(m[1]!)) throw new Error(`current → ${JSON.stringify(target)}: not a relative .releases/<id> target`);
  return m[1]!;
}

/** Release folders and manifests in `<home>/.releases/`. */
export async function releaseIds(home: string): Promise<{ folders: string[]; manifests: string[]; other: string[] }> {
  const entries = await readdir(path.join(home, '.releases'), { withFileTypes: true }).catch(() => []);
  const folders = entries.filter((e) => e.isDirectory() && ID.test(e.name)).map((e) => e.name).sort();
  const manifests = entries.filter((e) => e.isFile() && e.name.endsWith('.json') && ID.test(e.name.slice(0, -5))).map((e) => e.name.slice(0, -5)).sort();
  const other = entries.map((e) => e.name).filter((n) => !folders.includes(n) && !manifests.includes(n.replace(/\.json$/, ''))).sort();
  return { folders, manifests, other };
}

export interface StoredManifest {
  id: string;
  stagedAt: number;
  files: Array<{ name: string; size: number; mode: number; sha256: string }>;
}

export async function readManifest(home: string, id: string): Promise<StoredManifest> {
  return JSON.parse(await readFile(path.join(home, '.releases', `${id}.json`), 'utf8')) as StoredManifest;
}

/** Every regular file below dir, as relative names with '/' (other entries are listed as `<name> (type)`). */
export async function listTree(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listTree(path.join(dir, e.name), rel)));
    else if (e.isFile()) out.push(rel);
    else out.push(`${rel} (not a regular file)`);
  }
  return out.sort();
}

/**
 * Problems with release `id` as a complete release: its manifest exists, and its folder holds exactly the
 * manifest's files, each with the manifest's size, mode and sha256. Empty when it is complete.
 */
export async function releaseProblems(home: string, id: string): Promise<string[]> {
  let m: StoredManifest;
  try {
    m = await readManifest(home, id);
  } catch (err) {
    return [`release ${id}: no readable manifest (${(err as Error).message})`];
  }
  const problems: string[] = [];
  if (m.id !== id) problems.push(`manifest of ${id} says id ${m.id}`);
  const folder = path.join(home, '.releases', id);
  const names = await listTree(folder).catch((err: Error) => [`(folder unreadable: ${err.message})`]);
  const want = m.files.map((f) => f.name).sort();
  if (JSON.stringify(names) !== JSON.stringify(want)) {
    const extra = names.filter((n) => !want.includes(n));
    const missing = want.filter((n) => !names.includes(n));
    problems.push(`release ${id}: folder differs from its manifest: missing ${JSON.stringify(missing.slice(0, 5))} extra ${JSON.stringify(extra.slice(0, 5))}`);
  }
  for (const f of m.files) {
    const file = path.join(folder, ...f.name.split('/'));
    const st = await lstat(file).catch(() => undefined);
    if (!st?.isFile()) continue; // reported above
    if (st.size !== f.size) problems.push(`${id}/${f.name}: size ${st.size}, manifest ${f.size}`);
    if ((st.mode & 0o777) !== f.mode) problems.push(`${id}/${f.name}: mode ${(st.mode & 0o777).toString(8)}, manifest ${f.mode.toString(8)}`);
    const got = sha256(await readFile(file));
    if (got !== f.sha256) problems.push(`${id}/${f.name}: sha256 ${got}, manifest ${f.sha256}`);
  }
  return problems;
}

/** sha256 of every file below root, by relative name. */
export async function treeDigests(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of await listTree(root)) out.set(name, sha256(await readFile(path.join(root, ...name.split('/')))));
  return out;
}

/** `relay releases --json` output. */
export interface ReleasesJson {
  release: string;
  nodes: Array<{ target: string; ok: boolean; current: string | null; releases: Array<{ id: string; stagedAt: number; files: number; bytes: number; current: boolean }>; code?: string; message?: string }>;
}
