/**
 * The little the suite assumes about `<dir>/.relay-partial/`: the files of one partial share a base name
 * (e.g. `<key>.part` + `<key>.json`), and their mtimes tell the receiver how long they sat untouched.
 * Kept in one place so a change of layout is one edit here.
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, utimes } from 'node:fs/promises';
import path from 'node:path';
import { PARTIAL_DIR } from './checks.js';

export function partialDir(inbox: string): string {
  return path.join(inbox, PARTIAL_DIR);
}

export async function partialFiles(inbox: string): Promise<Set<string>> {
  return new Set(await readdir(partialDir(inbox)).catch(() => [] as string[]));
}

/** Partials (base names) among these files. */
export function partialKeys(files: Iterable<string>): Set<string> {
  return new Set([...files].map((f) => f.replace(/\.[^.]+$/, '')));
}

/** Makes every file of these partials look untouched for `ageMs`. */
export async function agePartials(inbox: string, files: Iterable<string>, ageMs: number): Promise<void> {
  const t = new Date(Date.now() - ageMs);
  for (const f of files) await utimes(path.join(partialDir(inbox), f), t, t);
}

/**
 * Writes `count` copies of the partial made of `template` files (their first `keepBytes` bytes each) under
 * new random base names, aged `ageMs`. Returns the new file names.
 */
export async function clonePartials(inbox: string, template: string[], count: number, ageMs: number, keepBytes = 4096): Promise<string[]> {
  const dir = partialDir(inbox);
  const contents = await Promise.all(template.map(async (f) => {
    const fh = await open(path.join(dir, f), 'r');
    try {
      const buf = Buffer.alloc(keepBytes);
      const { bytesRead } = await fh.read(buf, 0, keepBytes, 0);
      return { ext: path.extname(f), data: buf.subarray(0, bytesRead) };
    } finally {
      await fh.close();
    }
  }));
  const t = new Date(Date.now() - ageMs);
  const names: string[] = [];
  const one = async (): Promise<void> => {
    const key = randomBytes(20).toString('hex');
    for (const { ext, data } of contents) {
      const name = `${key}${ext}`;
      const fh = await open(path.join(dir, name), 'w', 0o600);
      try {
        await fh.write(data);
        await fh.utimes(t, t);
      } finally {
        await fh.close();
      }
      names.push(name);
    }
  };
  for (let done = 0; done < count; ) {
    const batch = Math.min(256, count - done);
    await Promise.all(Array.from({ length: batch }, one));
    done += batch;
  }
  return names;
}
