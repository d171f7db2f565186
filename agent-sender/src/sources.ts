/** Turns the paths a user named into the files to send and the names they get on the receiver. */
import { constants as fsConstants } from 'node:fs';
import { lstat, open, readdir, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { checkName, createError, ErrorCode } from '@relayer/common';
import { FileList, type SourceFile } from './file-list.js';

export interface Sources {
  files: FileList;
  /** Names of symlinks found inside directories and not followed. */
  skipped: string[];
}

export type { SourceFile };

/** Upper bound on files in one job: a typo like `relay send /` must not walk a whole disk. */
export const MAX_FILES_PER_JOB = 100_000;

/**
 * A file is sent under its base name (or `as`); a directory as its tree, under its own base name (or
 * `as`). Symlinks inside a directory tree are not followed (they are listed in `skipped`). `as` needs
 * exactly one path. Nothing to send is an error: a build that produced no files must not "succeed".
 */
export async function expandSources(paths: string[], as?: string): Promise<Sources> {
  if (paths.length === 0) throw createError(ErrorCode.USAGE, 'no file to send');
  if (as !== undefined && paths.length !== 1) throw createError(ErrorCode.USAGE, '--as needs exactly one path');
  if (as !== undefined) checkName(as);
  const out = new FileList();
  const skipped: string[] = [];
  const bases: string[] = [];
  for (const p of paths) {
    const abs = path.resolve(p);
    const st = await stat(abs).catch((err: NodeJS.ErrnoException) => {
      throw createError(ErrorCode.SOURCE, `cannot read ${p}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}`);
    });
    const base = as ?? path.basename(abs);
    bases.push(base);
    if (st.isFile()) out.add(out.addPlace(abs, base), '', st.size);
    else if (st.isDirectory()) {
      const from = out.length;
      await walk(abs, base, out, skipped);
      await sizeAll(out, from);
    }
    else throw createError(ErrorCode.SOURCE, `${p} is not a regular file or directory`);
  }
  // Names under one path differ, and differ from another path's unless both have the same base name.
  const names = new Set(bases).size === bases.length ? undefined : new Set<string>();
  for (const f of out) {
    checkName(f.name);
    if (names?.has(f.name)) throw createError(ErrorCode.USAGE, `two files would arrive as ${f.name}`);
    names?.add(f.name);
  }
  if (out.length === 0) {
    throw createError(ErrorCode.SOURCE, `nothing to send: no regular files in ${paths.join(', ')}${skipped.length ? ` (${skipped.length} symlink(s) not followed)` : ''}`);
  }
  return { files: out, skipped };
}

/** lstat calls in flight while a tree's files are sized: one at a time cost ~35 ms per 1000 files. */
const SIZING_PARALLEL = 32;

/** Lists a tree's regular files in name order, depth first; their sizes are filled in by sizeAll. */
async function walk(dir: string, name: string, out: FileList, skipped: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => a.name.localeCompare(b.name));
  let place = -1;
  // Names that decode alike (invalid UTF-8 becomes U+FFFD) would be sent twice under one name.
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.name)) throw createError(ErrorCode.USAGE, `two files would arrive as ${name}/${e.name}`);
    seen.add(e.name);
    if (e.isDirectory()) await walk(path.join(dir, e.name), `${name}/${e.name}`, out, skipped);
    else if (e.isSymbolicLink()) skipped.push(`${name}/${e.name}`);
    else if (e.isFile()) {
      if (out.length >= MAX_FILES_PER_JOB) throw createError(ErrorCode.USAGE, `more than ${MAX_FILES_PER_JOB} files in one send`);
      if (place < 0) place = out.addPlace(dir, name);
      out.add(place, e.name, 0);
    }
  }
}

/** Sets the size (lstat) of each file from `from` on, SIZING_PARALLEL at a time. */
async function sizeAll(files: FileList, from: number): Promise<void> {
  let next = from;
  const sizer = async (): Promise<void> => {
    for (let i = next++; i < files.length; i = next++) files.setSize(i, (await lstat(files.at(i)!.file)).size);
  };
  await Promise.all(Array.from({ length: Math.min(SIZING_PARALLEL, files.length - from) }, sizer));
}

/** One --allow-root as resolved at start: its real path and the identity of the folder found there. */
export interface FixedRoot {
  given: string;
  real: string;
  dev: number;
  ino: number;
}

/**
 * The allowed roots, resolved once at start (realpath, device and inode recorded). A root swapped for a
 * symlink or another folder after start does not widen what may be sent: files are checked against the
 * fixed real paths, and a root whose folder is no longer the one recorded allows nothing.
 */
export class AllowRoots {
  private constructor(private readonly roots: readonly FixedRoot[]) {}

  /** Resolves every root; a root that does not exist or is not a directory is a USAGE error. */
  static async resolve(given: readonly string[]): Promise<AllowRoots> {
    const roots: FixedRoot[] = [];
    for (const g of given) {
      const real = await realpath(g).catch((err: NodeJS.ErrnoException) => {
        throw createError(ErrorCode.USAGE, `--allow-root ${g}: ${err.code === 'ENOENT' ? 'no such directory' : err.message}`);
      });
      const st = await stat(real);
      if (!st.isDirectory()) throw createError(ErrorCode.USAGE, `--allow-root ${g}: not a directory`);
      roots.push({ given: g, real, dev: st.dev, ino: st.ino });
    }
    return new AllowRoots(roots);
  }

  get list(): string[] {
    return this.roots.map((r) => r.real);
  }

  /** The roots as recorded at start (for a worker thread that checks files against them). */
  get fixed(): FixedRoot[] {
    return this.roots.map((r) => ({ ...r }));
  }

  /** Throws NOT_ALLOWED unless `real` (a fully resolved path) lies under a root that is still the folder recorded. */
  async assertUnder(real: string, file: string): Promise<void> {
    const root = rootOf(this.roots, real, file);
    if (!isRecordedFolder(root, await lstat(root.real).catch(() => undefined))) throw rootMoved(root, file);
  }
}

/**
 * The allow-root rule, shared by AllowRoots and the whole-file reader's worker: the root `real` lies
 * under, or NOT_ALLOWED (no roots at all, or outside every one).
 */
export function rootOf(roots: readonly FixedRoot[], real: string, file: string): FixedRoot {
  if (roots.length === 0) throw createError(ErrorCode.NOT_ALLOWED, `refused ${file}: the sender agent has no --allow-root, so it sends nothing`);
  for (const root of roots) {
    const prefix = root.real.endsWith(path.sep) ? root.real : root.real + path.sep;
    if (real === root.real || real.startsWith(prefix)) return root;
  }
  throw createError(ErrorCode.NOT_ALLOWED, `refused ${file}: outside every allowed root (${roots.map((r) => r.given).join(', ')})`);
}

/** What is at the root's path now (lstat) is still the folder recorded at start. */
export function isRecordedFolder(root: FixedRoot, now: { isDirectory(): boolean; dev: number; ino: number } | undefined): boolean {
  return Boolean(now?.isDirectory() && now.dev === root.dev && now.ino === root.ino);
}

export function rootMoved(root: FixedRoot, file: string): Error {
  return createError(ErrorCode.NOT_ALLOWED, `refused ${file}: the allowed root ${root.given} is no longer the folder it was at start`);
}

/**
 * Checks that a path lies under one of the allowed roots after resolving every symlink, so a link inside
 * an allowed folder cannot point at /etc/shadow. Used to refuse early; the check that counts is
 * `openAllowed`, on the descriptor that will be read.
 */
export async function checkAllowed(file: string, allowRoots: AllowRoots): Promise<string> {
  const real = await realpath(file).catch((err: Error) => {
    throw createError(ErrorCode.SOURCE, `cannot read ${file}: ${err.message}`);
  });
  await allowRoots.assertUnder(real, file);
  return real;
}

/**
 * Opens a file for sending and checks where the open descriptor really points: renaming a folder and
 * putting a symlink in its place after an earlier check cannot redirect the read outside the roots.
 * O_NONBLOCK keeps a FIFO swapped in for the file from blocking the open.
 */
export async function openAllowed(file: string, allowRoots: AllowRoots): Promise<FileHandle> {
  const fh = await open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK).catch((err: Error) => {
    throw createError(ErrorCode.SOURCE, `cannot read ${file}: ${err.message}`);
  });
  try {
    await allowRoots.assertUnder(await descriptorPath(fh, file), file);
    return fh;
  } catch (err) {
    await fh.close();
    throw err;
  }
}

async function descriptorPath(fh: FileHandle, file: string): Promise<string> {
  try {
    return await readlink(`/proc/self/fd/${fh.fd}`);
  } catch {
    // No /proc: resolve the name, then make sure it still names the file that is open.
    const real = await realpath(file);
    const [a, b] = await Promise.all([fh.stat(), stat(real)]);
    if (a.ino !== b.ino || a.dev !== b.dev) throw createError(ErrorCode.NOT_ALLOWED, `refused ${file}: it changed while being checked`);
    return real;
  }
}
