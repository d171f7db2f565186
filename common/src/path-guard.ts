/**
 * The only way a name from the wire becomes a path on the receiver's disk. A name is a relative,
 * '/'-separated path; it may not climb out of the root, name the partial folder, contain control
 * characters (C0, C1, bidi overrides/isolates), or pass through a symlink that exists inside the root.
 */
import type { Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { elide } from './echo.js';
import { createError, ErrorCode } from './errors.js';

export const PARTIAL_DIR = '.relay-partial';
const MAX_NAME_BYTES = 4096;
const MAX_SEGMENT_BYTES = 255;
// C0, DEL and C1 controls (U+009B is an 8-bit CSI that drives terminals), and the bidi embeddings,
// overrides and isolates that make a name display as something else ("invoice\u202Efdp.exe").
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/**
 * JSON quoting plus \u escapes for what JSON leaves raw, so a refused name cannot drive a terminal;
 * bounded (elided in the middle) so a long one cannot flood it either.
 */
export function quoteName(name: string): string {
  return JSON.stringify(elide(name)).replace(/[\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function refuse(name: string, why: string): never {
  throw createError(ErrorCode.BAD_NAME, `refused name ${quoteName(name)}: ${why}`);
}

/** Checks a name's syntax and returns its segments. Throws BAD_NAME. */
export function checkName(name: string): string[] {
  if (typeof name !== 'string' || name.length === 0) refuse(String(name), 'empty');
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) refuse(name, 'too long');
  if (CONTROL.test(name)) refuse(name, 'contains a control character');
  if (name.includes('\\')) refuse(name, 'contains a backslash');
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) refuse(name, 'is absolute');
  const segments = name.split('/');
  for (const s of segments) {
    if (s === '..') refuse(name, 'contains ..');
    if (s === '' || s === '.') refuse(name, 'has an empty or "." segment');
    if (Buffer.byteLength(s) > MAX_SEGMENT_BYTES) refuse(name, 'has a segment over 255 bytes');
  }
  if (segments[0] === PARTIAL_DIR) refuse(name, `points into ${PARTIAL_DIR}/`);
  return segments;
}

/** What one folder on a name's way is: checked once per batch of names (see FolderChecks). */
type FolderState = 'dir' | 'missing' | 'symlink' | 'other';

/**
 * Folder checks shared by the names of one batch: a folder holding many of them is looked at once, not
 * once per file. Valid only while the batch is handled (a folder may change afterwards).
 */
export type FolderChecks = Map<string, Promise<FolderState>>;

export interface Inspected {
  /** Absolute final path. */
  path: string;
  /** What is at the final path now (lstat), when something is. */
  existing: Stats | undefined;
}

async function folderState(dir: string): Promise<FolderState> {
  try {
    const st = await lstat(dir);
    return st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : 'other';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
}

/**
 * Resolves a name under root and checks, on disk, that no existing component inside root is a symlink
 * (or a non-directory where a directory is needed). Returns the absolute final path and what is there
 * now. `folders` shares the folder checks between the names of one batch. Throws BAD_NAME.
 */
export async function inspectInside(root: string, name: string, folders?: FolderChecks): Promise<Inspected> {
  const segments = checkName(name);
  const absRoot = path.resolve(root);
  const final = path.join(absRoot, ...segments);
  // Belt and braces: the syntax checks already rule this out.
  if (!final.startsWith(absRoot + path.sep)) refuse(name, 'escapes the root');
  let current = absRoot;
  for (let i = 0; i < segments.length - 1; i++) {
    current = path.join(current, segments[i]!);
    let state = folders?.get(current);
    if (!state) {
      state = folderState(current);
      folders?.set(current, state);
    }
    const found = await state;
    if (found === 'missing') return { path: final, existing: undefined }; // the rest will be created
    if (found === 'symlink') refuse(name, 'passes through a symlink');
    if (found === 'other') refuse(name, `${segments.slice(0, i + 1).join('/')} is not a directory`);
  }
  let existing: Stats | undefined;
  try {
    existing = await lstat(final);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing?.isSymbolicLink()) refuse(name, 'passes through a symlink');
  if (existing?.isDirectory()) refuse(name, 'is an existing directory');
  return { path: final, existing };
}

/** inspectInside for one name: the absolute final path. Throws BAD_NAME. */
export async function resolveInside(root: string, name: string): Promise<string> {
  return (await inspectInside(root, name)).path;
}
