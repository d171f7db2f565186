/** Turns the paths a user named into the files to send and the names they get on the receiver. */
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { checkName, createError, ErrorCode } from '@relayer/common';

export interface SourceFile {
  /** Absolute local path. */
  file: string;
  /** Relative '/'-separated name on the receiver. */
  name: string;
  size: number;
}

/** Upper bound on files in one job: a typo like `relay send /` must not walk a whole disk. */
export const MAX_FILES_PER_JOB = 100_000;

/**
 * A file is sent under its base name (or `as`); a directory as its tree, under its own base name (or
 * `as`). Symlinks inside a directory tree are skipped, not followed. `as` needs exactly one path.
 */
export async function expandSources(paths: string[], as?: string): Promise<SourceFile[]> {
  if (paths.length === 0) throw createError(ErrorCode.USAGE, 'no file to send');
  if (as !== undefined && paths.length !== 1) throw createError(ErrorCode.USAGE, '--as needs exactly one path');
  if (as !== undefined) checkName(as);
  const out: SourceFile[] = [];
  for (const p of paths) {
    const abs = path.resolve(p);
    const st = await stat(abs).catch((err: NodeJS.ErrnoException) => {
      throw createError(ErrorCode.SOURCE, `cannot read ${p}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}`);
    });
    const base = as ?? path.basename(abs);
    if (st.isFile()) out.push({ file: abs, name: base, size: st.size });
    else if (st.isDirectory()) await walk(abs, base, out);
    else throw createError(ErrorCode.SOURCE, `${p} is not a regular file or directory`);
  }
  const names = new Set<string>();
  for (const f of out) {
    checkName(f.name);
    if (names.has(f.name)) throw createError(ErrorCode.USAGE, `two files would arrive as ${f.name}`);
    names.add(f.name);
  }
  return out;
}

async function walk(dir: string, prefix: string, out: SourceFile[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    const abs = path.join(dir, e.name);
    const name = `${prefix}/${e.name}`;
    if (e.isDirectory()) await walk(abs, name, out);
    else if (e.isFile()) {
      if (out.length >= MAX_FILES_PER_JOB) throw createError(ErrorCode.USAGE, `more than ${MAX_FILES_PER_JOB} files in one send`);
      out.push({ file: abs, name, size: (await lstat(abs)).size });
    }
  }
}

/**
 * Checks that a file lies under one of the allowed roots after resolving every symlink, so a link inside
 * an allowed folder cannot point at /etc/shadow. Returns the resolved path to open.
 */
export async function checkAllowed(file: string, allowRoots: readonly string[]): Promise<string> {
  if (allowRoots.length === 0) {
    throw createError(ErrorCode.NOT_ALLOWED, `refused ${file}: the sender agent has no --allow-root, so it sends nothing`);
  }
  const real = await realpath(file).catch((err: Error) => {
    throw createError(ErrorCode.SOURCE, `cannot read ${file}: ${err.message}`);
  });
  for (const root of allowRoots) {
    const realRoot = await realpath(root).catch(() => undefined);
    if (realRoot && (real === realRoot || real.startsWith(realRoot.endsWith(path.sep) ? realRoot : realRoot + path.sep))) return real;
  }
  throw createError(ErrorCode.NOT_ALLOWED, `refused ${file}: outside every allowed root (${allowRoots.join(', ')})`);
}
