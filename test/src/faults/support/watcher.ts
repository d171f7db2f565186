/**
 * Watches a receiver's folder for the whole of a scenario and checks the promise users depend on: a
 * final name only ever holds one whole, verified version. fs.watch (one per folder) reports names as they
 * appear; a poll walks the folder as well (fs.watch can drop events); every new or changed file under a
 * final name is hashed through one open descriptor and must equal one of the source versions in play.
 * A file whose size or mtime moves while it is being hashed was written in place under its final name,
 * which is a violation too.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { delay, listFiles, MiB } from './harness.js';

const PARTIAL_DIR = '.relay-partial';

export class FinalNameWatcher {
  /** sha256 values a final name may hold. */
  readonly allowed = new Set<string>();
  readonly violations: string[] = [];
  /** Distinct (file, version) states hashed and found whole. */
  checked = 0;
  polls = 0;
  private readonly seen = new Map<string, string>();
  private readonly pending = new Set<string>();
  /** One fs.watch per folder (not `recursive`: Node 20 implements that by re-walking the whole tree,
   * .relay-partial included, on every event). */
  private readonly dirWatchers = new Map<string, FSWatcher>();
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  /** `ignore(rel)`: names under the folder that are not the receiver's (a test's filler file). */
  constructor(readonly root: string, private readonly ignore: (rel: string) => boolean = () => false, private readonly pollMs = 250) {}

  allow(...sha256: string[]): this {
    for (const h of sha256) this.allowed.add(h);
    return this;
  }

  start(): this {
    this.running = true;
    this.watchDir('');
    this.loop = this.run();
    return this;
  }

  private watchDir(rel: string): void {
    if (this.dirWatchers.has(rel) || this.dirWatchers.size >= 5000) return;
    try {
      const w = watch(path.join(this.root, rel), (_event, name) => {
        if (!name || (rel === '' && name.toString() === PARTIAL_DIR)) return;
        this.pending.add(rel ? `${rel}/${name.toString()}` : name.toString());
        this.wake?.();
      });
      w.on('error', () => undefined);
      this.dirWatchers.set(rel, w);
    } catch { /* gone already; the poll still covers it */ }
  }

  /** Stops watching after one last full pass (so a scenario's end state is checked too). */
  async stop(): Promise<void> {
    for (const w of this.dirWatchers.values()) w.close();
    this.dirWatchers.clear();
    this.running = false;
    this.wake?.();
    await this.loop;
    await this.pass();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const started = Date.now();
      await this.pass();
      this.polls++;
      // A big tree takes a while to walk: the poll is the backstop of fs.watch, so it may take a fifth of
      // the time at most (the system under test shares the CPU with it).
      const wait = Math.min(Math.max(this.pollMs, (Date.now() - started) * 4), 5000);
      if (!this.running) break;
      await Promise.race([delay(wait), new Promise<void>((r) => (this.wake = r))]);
      this.wake = undefined;
      if (this.pending.size) await this.checkPending();
    }
  }

  private async checkPending(): Promise<void> {
    const names = [...this.pending];
    this.pending.clear();
    for (const rel of names) await this.check(rel);
  }

  private async pass(): Promise<void> {
    const files = await listFiles(this.root, new Set([PARTIAL_DIR]));
    if (this.running) for (const rel of files) this.watchDir(path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel));
    for (const rel of files) await this.check(rel);
    await this.checkPending();
  }

  private async check(rel: string): Promise<void> {
    if (this.ignore(rel)) return;
    const file = path.join(this.root, rel);
    // Unchanged since it was last hashed: a stat is enough (no open) on every pass of a big tree.
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile() || this.seen.get(rel) === `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`) return;
    let fh;
    try {
      fh = await open(file, 'r');
    } catch {
      return; // gone, or a folder
    }
    try {
      const before = await fh.stat();
      if (!before.isFile()) return;
      const sig = `${before.ino}:${before.size}:${before.mtimeMs}:${before.ctimeMs}`;
      if (this.seen.get(rel) === sig) return;
      const hash = createHash('sha256');
      const buf = Buffer.allocUnsafe(4 * MiB);
      for (let pos = 0; ; ) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) break;
        hash.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
      const digest = hash.digest('hex');
      const after = await fh.stat();
      if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
        this.violations.push(`${rel}: written in place under its final name (size ${before.size} -> ${after.size} while hashing)`);
      } else if (!this.allowed.has(digest)) {
        this.violations.push(`${rel}: holds ${before.size} bytes with sha256 ${digest}, which is no whole version of any source`);
      } else {
        this.checked++;
      }
      this.seen.set(rel, sig);
    } finally {
      await fh.close();
    }
  }
}
