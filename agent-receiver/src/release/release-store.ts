/**
 * A release's place on disk, and the only code that changes it:
 *
 *   <dir>/<release>/current              symlink, RELATIVE target `.releases/<id>`
 *   <dir>/<release>/.releases/<id>/      the release's files (staging until its manifest exists)
 *   <dir>/<release>/.releases/<id>.json  its manifest, written once the release is verified and durable
 *
 * A release is complete exactly when its manifest exists: only a complete release is ever switched to.
 * The switch is a new symlink under a temporary name renamed over `current` (rename(2) is atomic; `ln -sfn`
 * unlinks first, and a reader then finds nothing), then the folder is fsynced: after a crash `current`
 * names the old release or the new one. A relative target keeps working wherever the folder is mounted.
 */
import { existsSync } from 'node:fs';
import { lstat, open, readdir, readFile, readlink, rename, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { checkReleaseName, createError, inspectInside, ErrorCode, quoteName, RELEASE_ID, RELEASES_DIR, type ManifestEntry, type ReleaseInfo } from '@relayer/common';
import { fsyncDir, makeFolder } from '../store/durable-folders.js';

export const CURRENT = 'current';

/** What a complete release's manifest file holds. */
export interface StoredManifest {
  id: string;
  stagedAt: number;
  files: ManifestEntry[];
}

export class ReleaseStore {
  constructor(private readonly root: string) {}

  /** <dir>/<release> */
  home(release: string): string {
    return path.join(this.root, ...checkReleaseName(release));
  }

  /**
   * Throws BAD_NAME unless the release's folder and its .releases/ are real folders below the root (or not
   * there yet): a release named through a symlink (`www/current`, a link an operator made) would write into
   * whatever the link points at, a live release included.
   */
  async checkHome(release: string): Promise<void> {
    await inspectInside(this.root, `${release}/${RELEASES_DIR}/.probe`);
    // A `current` that is a folder or a file (a plain send from before releases) would fail only at the
    // switch, after every byte was sent: refuse the release before its first byte instead.
    await this.current(release);
  }

  releasesDir(release: string): string {
    return path.join(this.home(release), RELEASES_DIR);
  }

  folder(release: string, id: string): string {
    return path.join(this.releasesDir(release), id);
  }

  /**
   * Whether release `id` was staged to the end (its manifest is written), synchronously: the name guard
   * runs before a file is taken. A name into a complete release is refused, not "begin again".
   */
  isComplete(release: string, id: string): boolean {
    return existsSync(path.join(this.releasesDir(release), `${id}.json`));
  }

  /** The wire name of a file of release `id`, as the sender offers it. */
  static fileName(release: string, id: string, name: string): string {
    return `${release}/${RELEASES_DIR}/${id}/${name}`;
  }

  /** The release `current` points at, or null; throws BAD_NAME when `current` is something other than a symlink. */
  async current(release: string): Promise<string | null> {
    const link = path.join(this.home(release), CURRENT);
    const st = await lstat(link).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (!st) return null;
    if (!st.isSymbolicLink()) throw createError(ErrorCode.BAD_NAME, `${quoteName(`${release}/${CURRENT}`)} exists and is not a release link (move it away once: releases replace it)`);
    const target = await readlink(link);
    const id = path.basename(target);
    return target === `${RELEASES_DIR}/${id}` && RELEASE_ID.test(id) ? id : null;
  }

  /** Creates the staging folder (and the folders above it); returns the folders whose entries changed. */
  async makeStaging(release: string, id: string): Promise<string[]> {
    return makeFolder(this.folder(release, id));
  }

  async manifest(release: string, id: string): Promise<StoredManifest | undefined> {
    const text = await readFile(path.join(this.releasesDir(release), `${id}.json`), 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (text === undefined) return undefined;
    const m = JSON.parse(text) as StoredManifest;
    if (m.id !== id || !Array.isArray(m.files)) throw createError(ErrorCode.IO, `the manifest of release ${id} is damaged`);
    return m;
  }

  /** Writes the manifest durably (temp file, fsync, rename, fsync the folder): from here on the release is complete. */
  async complete(release: string, manifest: StoredManifest): Promise<void> {
    const dir = this.releasesDir(release);
    const temp = path.join(dir, `.${manifest.id}.json.tmp`);
    const fh = await open(temp, 'w', 0o644);
    try {
      await fh.writeFile(JSON.stringify(manifest));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, path.join(dir, `${manifest.id}.json`));
    await fsyncDir(dir);
  }

  /** Points `current` at the complete release `id` in one rename; returns the release it pointed at before. */
  async switchTo(release: string, id: string): Promise<string | null> {
    if (!(await this.manifest(release, id))) throw createError(ErrorCode.NO_RELEASE, `release ${id} of ${quoteName(release)} is not staged on this node`);
    const previous = await this.current(release);
    const home = this.home(release);
    const temp = path.join(home, `.${CURRENT}-${id}.tmp`);
    await rm(temp, { force: true });
    await symlink(`${RELEASES_DIR}/${id}`, temp);
    try {
      await rename(temp, path.join(home, CURRENT));
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    await fsyncDir(home);
    return previous;
  }

  /** Ids of the release folders present, complete or not, oldest first. */
  async ids(release: string): Promise<{ complete: string[]; incomplete: string[] }> {
    const entries = await readdir(this.releasesDir(release), { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    const folders = entries.filter((e) => e.isDirectory() && RELEASE_ID.test(e.name)).map((e) => e.name);
    const manifests = new Set(entries.filter((e) => e.isFile() && e.name.endsWith('.json')).map((e) => e.name.slice(0, -5)));
    folders.sort();
    return { complete: folders.filter((id) => manifests.has(id)), incomplete: folders.filter((id) => !manifests.has(id)) };
  }

  async list(release: string): Promise<{ current: string | null; releases: ReleaseInfo[] }> {
    const current = await this.current(release);
    const { complete } = await this.ids(release);
    const releases: ReleaseInfo[] = [];
    for (const id of complete) {
      const m = await this.manifest(release, id);
      if (!m) continue;
      releases.push({ id, stagedAt: m.stagedAt, files: m.files.length, bytes: m.files.reduce((n, f) => n + f.size, 0), current: id === current });
    }
    return { current, releases };
  }

  /** Removes a release's folder and manifest (the manifest first: a half-removed release is incomplete, never complete). */
  async remove(release: string, id: string): Promise<void> {
    const dir = this.releasesDir(release);
    await rm(path.join(dir, `${id}.json`), { force: true });
    await rm(path.join(dir, id), { recursive: true, force: true });
  }

  /** Makes the folders of a staged release durable: each folder once (its files' entries), deepest first. */
  async syncFolders(release: string, id: string, names: readonly string[], extra: Iterable<string>): Promise<void> {
    const base = this.folder(release, id);
    const dirs = new Set<string>(extra);
    dirs.add(base);
    dirs.add(path.dirname(base));
    for (const name of names) for (let d = path.dirname(name); d !== '.'; d = path.dirname(d)) dirs.add(path.join(base, d));
    const ordered = [...dirs].sort((a, b) => b.length - a.length);
    await inParallel(ordered, 16, fsyncDir);
  }

  /** Creates the folder of `file` inside a staging release (mkdir -p); returns the folders whose entries changed. */
  static async folderFor(file: string): Promise<string[]> {
    return makeFolder(path.dirname(file));
  }
}

/** Runs `fn` over `items`, `width` at a time. */
export async function inParallel<T>(items: readonly T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
}

