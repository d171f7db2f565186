/** Turns the paths a user named into the files to send and the names they get on the receiver. */
import { isUtf8 } from 'node:buffer';
import { constants as fsConstants, type Dirent } from 'node:fs';
import { lstat, open, readdir, realpath, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { checkName, createError, describeErrno, elide, ErrorCode, isRelayError, quoteName } from '@relayer/common';
import { MAX_FILES_PER_JOB, SIZING_PARALLEL } from '../limits.js';
import { FileList, type SourceFile } from './file-list.js';
import { describeSkipped, SkipKind, type SkippedEntry, type UnsendableEntry } from './job-events.js';
import { descriptorPath } from './descriptor-path.js';

export interface Sources {
  files: FileList;
  /** Entries of a folder that are not regular files (symlinks, FIFOs, sockets, devices): never sent, reported. */
  skipped: SkippedEntry[];
  /** Entries that should have been sent and cannot be (a folder that cannot be listed, a name the receiver would refuse): each fails. */
  unsendable: UnsendableEntry[];
}

export type { SourceFile };


/**
 * A file is sent under its base name (or `as`); a directory as its tree, under its own base name (or
 * `as`). Inside a tree only regular files are sent: every other entry is listed in `skipped` with its
 * kind (symlinks are not followed; a FIFO, socket or device has no bytes to copy), and the send still
 * succeeds, as rsync's does. A folder that cannot be listed, or an entry whose name the receiver would
 * refuse, is `unsendable`: it fails on its own (the job fails), the rest is sent. What the user typed
 * wrong (`as` with several paths, a bad `as`, a path that does not exist) throws before anything is sent.
 * Nothing to send at all is an error: a build that produced no files must not "succeed".
 */
export async function expandSources(paths: string[], as?: string): Promise<Sources> {
  if (paths.length === 0) throw createError(ErrorCode.USAGE, 'no file to send');
  if (as !== undefined && paths.length !== 1) throw createError(ErrorCode.USAGE, '--as needs exactly one path');
  if (as !== undefined) checkName(as);
  const listing: Listing = { files: new FileList(), skipped: [], unsendable: [], entries: 0 };
  const out = listing.files;
  const bases: string[] = [];
  for (const p of paths) {
    const abs = path.resolve(p);
    const st = await stat(abs).catch((err: NodeJS.ErrnoException) => {
      throw createError(ErrorCode.SOURCE, `cannot read ${elide(p)}: ${describeErrno(err.code ?? 'EIO')}`);
    });
    const base = as ?? path.basename(abs);
    bases.push(base);
    if (st.isFile()) {
      checkName(base);
      out.add(out.addPlace(abs, base), '', st.size);
    } else if (st.isDirectory()) {
      const from = out.length;
      if (named(listing, base, abs)) await walk(abs, base, listing);
      await sizeAll(out, from);
    } else throw createError(ErrorCode.SOURCE, `${elide(p)} is not a regular file or directory`);
  }
  // Names under one path differ (one folder's entries do), and differ from another path's unless both
  // have the same base name.
  if (new Set(bases).size !== bases.length) {
    const names = new Set<string>();
    for (const f of out) {
      if (names.has(f.name)) throw createError(ErrorCode.USAGE, `two files would arrive as ${elide(f.name)}`);
      names.add(f.name);
    }
  }
  const { skipped, unsendable } = listing;
  if (out.length === 0 && unsendable.length === 0) {
    const why = skipped.length ? ` (${skipped.length} entr${skipped.length === 1 ? 'y' : 'ies'} skipped: ${describeSkipped(skipped)})` : '';
    throw createError(ErrorCode.SOURCE, `nothing to send: no regular files in ${elide(paths.join(', '))}${why}`);
  }
  return { files: out, skipped, unsendable };
}

interface Listing extends Sources {
  /** Entries met so far, of every sort. */
  entries: number;
}


const SKIP_REASON: Record<SkipKind, string> = {
  [SkipKind.SYMLINK]: 'symlinks are not followed',
  [SkipKind.FIFO]: 'not a regular file: a FIFO has no contents to copy',
  [SkipKind.SOCKET]: 'not a regular file: a socket has no contents to copy',
  [SkipKind.CHAR_DEVICE]: 'not a regular file: device nodes are not copied',
  [SkipKind.BLOCK_DEVICE]: 'not a regular file: device nodes are not copied',
  [SkipKind.OTHER]: 'not a regular file',
};

function kindOf(e: Dirent<Buffer>): SkipKind {
  if (e.isSymbolicLink()) return SkipKind.SYMLINK;
  if (e.isFIFO()) return SkipKind.FIFO;
  if (e.isSocket()) return SkipKind.SOCKET;
  if (e.isCharacterDevice()) return SkipKind.CHAR_DEVICE;
  if (e.isBlockDevice()) return SkipKind.BLOCK_DEVICE;
  return SkipKind.OTHER;
}

/** Counts an entry against the job's bound. */
function count(listing: Listing): void {
  if (++listing.entries > MAX_FILES_PER_JOB) throw createError(ErrorCode.USAGE, `more than ${MAX_FILES_PER_JOB} files and folders in one send`);
}

/** The name is one the receiver would take; else the entry at `local` is unsendable (BAD_NAME). */
function named(listing: Listing, name: string, local: string): boolean {
  try {
    checkName(name);
    return true;
  } catch (err) {
    if (!isRelayError(err, ErrorCode.BAD_NAME)) throw err;
    listing.unsendable.push({ name, code: ErrorCode.BAD_NAME, message: `${err.message} (${elide(local)})` });
    return false;
  }
}

/** Lists a tree's regular files in name order, depth first; their sizes are filled in by sizeAll. */
async function walk(dir: string, name: string, listing: Listing): Promise<void> {
  let entries: Dirent<Buffer>[];
  try {
    // Names as bytes: one that is not UTF-8 would read as U+FFFD, name no file, and collide with its siblings.
    entries = await readdir(dir, { withFileTypes: true, encoding: 'buffer' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    listing.unsendable.push({ name, code: ErrorCode.IO, message: `cannot list folder ${elide(dir)}: ${describeErrno(code)}` });
    return;
  }
  const decoded = entries.map((e) => ({ e, base: e.name.toString('utf8') }));
  decoded.sort((a, b) => a.base.localeCompare(b.base));
  let place = -1;
  for (const { e, base } of decoded) {
    count(listing);
    const entryName = `${name}/${base}`;
    const local = path.join(dir, base);
    if (!isUtf8(e.name)) {
      listing.unsendable.push({ name: entryName, code: ErrorCode.BAD_NAME, message: `refused name ${quoteName(entryName)}: not valid UTF-8 (${elide(local)})` });
    } else if (e.isDirectory()) {
      if (named(listing, entryName, local)) await walk(local, entryName, listing);
    } else if (e.isFile()) {
      if (!named(listing, entryName, local)) continue;
      if (place < 0) place = listing.files.addPlace(dir, name);
      listing.files.add(place, base, 0);
    } else {
      const kind = kindOf(e);
      listing.skipped.push({ name: entryName, kind, reason: SKIP_REASON[kind] });
    }
  }
}

/**
 * Sets the size (lstat) of each file from `from` on, SIZING_PARALLEL at a time. A file gone meanwhile
 * keeps size 0 and fails on its own when it is read, naming its path.
 */
async function sizeAll(files: FileList, from: number): Promise<void> {
  let next = from;
  const sizer = async (): Promise<void> => {
    for (let i = next++; i < files.length; i = next++) {
      const st = await lstat(files.at(i)!.file).catch(() => undefined);
      if (st) files.setSize(i, st.size);
    }
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
  const real = await realpath(file).catch((err: NodeJS.ErrnoException) => {
    throw createError(ErrorCode.SOURCE, `cannot read ${elide(file)}: ${describeErrno(err.code ?? 'EIO')}`);
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
  const fh = await open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
    throw createError(ErrorCode.SOURCE, `cannot read ${elide(file)}: ${describeErrno(err.code ?? 'EIO')}`);
  });
  try {
    await allowRoots.assertUnder(descriptorPath(fh.fd, file), file);
    return fh;
  } catch (err) {
    await fh.close();
    throw err;
  }
}
