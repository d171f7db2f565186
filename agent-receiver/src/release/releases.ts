/**
 * Releases on this receiver: staging (the manifest, hard links from the current release, the name guard
 * that lets files into a release only while it is being staged), staging's end (every entry verified, the
 * release made durable), the switch, rollback, --keep, and the node actions run after them.
 *
 * A name inside `<release>/.releases/` is taken only for a release being staged here and only if its
 * manifest lists it: a plain send can never write into a release, so a release that is complete stays as
 * it was verified. One operation at a time per release name (staging, switches, rollbacks and removals of
 * the same release are serialised); files of a release being staged arrive in parallel, as any files do.
 */
import { chmod, link, lstat, open, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import {
  checkName, checkReleaseName, createError, ErrorCode, quoteName, RELEASE_ID, RELEASES_DIR, toRelayError,
  type ActionCheckFrame, type ActionResult, type DiscardFrame, type ListReleasesFrame, type ListReleasesReply, type ManifestEntry,
  type ReceivedFrame, type ReleaseFrame, type ReleaseReply, type RollbackFrame, type RollbackReply, type RunFrame, type RunReply,
  type StageFrame, type StageReply, type SwitchFrame, type SwitchReply, type ThenSpec,
} from '@relayer/common';
import type { ActionRunner } from '../actions/action-runner.js';
import { hashPrefix } from '../store/partial-store.js';
import { syncFileSystem } from '../store/sync-fs.js';
import { inParallel, ReleaseStore, type StoredManifest } from './release-store.js';

/** An incomplete release folder nobody is staging is removed by a later switch once it is this old. */
const ABANDONED_AFTER_MS = 10 * 60_000;
/** Recent confirmations remembered for a plain send's action (its file's sha256 without a re-read). */
const RECENT_MAX = 4096;
/** Cut-off staging folders (newest first) a new release may take files from. */
const ABANDONED_SOURCES = 2;
/** Recent switches whose reply a sender that lost its connection gets again rather than a second run. */
const SWITCHES_REMEMBERED = 64;
/** Releases staged at once on this node (all senders). */
const MAX_STAGING = 32;
/** Files written for a release from which one syncfs makes it durable (fewer are fsynced one by one). */
const SYNCFS_MIN_FILES = 16;

interface Staging {
  release: string;
  id: string;
  startedAt: number;
  /** Last manifest part or confirmed file: a staging idle for long is dropped (its sender went away). */
  touchedAt: number;
  entries: ManifestEntry[];
  byName: Map<string, number>;
  /** sha256 of each entry as its confirmation said (the receiver verified those bytes on the way in). */
  verified: Map<string, string>;
  linked: Set<string>;
  /** Folders whose entries changed outside the files' own publishing (created folders, hard links). */
  changed: Set<string>;
  /** What entries may be hard-linked from, looked up once per staging (the current manifest is read once). */
  sources?: Promise<LinkSources>;
  /** Folders of the staging made for hard links (mkdir -p once per folder, not once per file). */
  folders: Map<string, Promise<void>>;
}

interface LinkSources {
  /** `sha256:mode:size` → name in the current release. */
  have: Map<string, string>;
  /** The current release's folder, when it has a manifest. */
  from: string | undefined;
  /** Cut-off staging folders, newest first. */
  cutOff: string[];
}

export interface ReleasesInit {
  root: string;
  node: string;
  log: Logger;
  actions: ActionRunner;
  /** The node and the host's path of a path in the receiver's folder (for the manifest reply). */
  display?: (p: string) => { node: string; displayPath?: string };
}

export class Releases {
  private readonly store: ReleaseStore;
  private readonly staging = new Map<string, Staging>();
  private readonly serial = new Map<string, Promise<unknown>>();
  private readonly recent = new Map<string, { size: number; sha256: string; path: string }>();
  private readonly switches = new Map<string, Promise<SwitchReply>>();

  constructor(private readonly init: ReleasesInit) {
    this.store = new ReleaseStore(init.root);
  }

  /**
   * For the transfer registry, before a name is written: throws BAD_NAME for a name into a release that is
   * not being staged. True for a file of a release being staged: stage() makes the release durable as a whole.
   */
  guardName(name: string): boolean {
    const segments = name.split('/');
    const at = segments.indexOf(RELEASES_DIR);
    if (at < 0) return false;
    const release = segments.slice(0, at).join('/');
    const id = segments[at + 1];
    const rest = segments.slice(at + 2).join('/');
    const s = id !== undefined && RELEASE_ID.test(id) ? this.staging.get(key(release, id)) : undefined;
    if (!s && id !== undefined && RELEASE_ID.test(id) && rest !== '' && !this.store.isComplete(release, id)) {
      // A sender sending into a release this node forgot (it restarted): it begins the release again.
      throw createError(ErrorCode.NO_RELEASE, `release ${id} of ${quoteName(release)} is not being staged on this node (it restarted?): begin again`);
    }
    if (!s || rest === '' || !s.byName.has(rest)) {
      throw createError(ErrorCode.BAD_NAME, `refused name ${quoteName(name)}: inside ${RELEASES_DIR}/ only the files of a release being staged are written (send with --release)`);
    }
    return true;
  }

  /** Hears every confirmation this receiver sends (its files were verified on the way in). */
  confirmed(r: ReceivedFrame): void {
    this.recent.delete(r.name);
    this.recent.set(r.name, { size: r.size, sha256: r.sha256, path: r.path });
    if (this.recent.size > RECENT_MAX) this.recent.delete(this.recent.keys().next().value!);
    const segments = r.name.split('/');
    const at = segments.indexOf(RELEASES_DIR);
    if (at < 0) return;
    const s = this.staging.get(key(segments.slice(0, at).join('/'), segments[at + 1] ?? ''));
    if (!s) return;
    const name = segments.slice(at + 2).join('/');
    s.verified.set(name, r.sha256);
    // Written over a hard link: the file is the one received now, held to the manifest like any sent file.
    s.linked.delete(name);
    s.touchedAt = Date.now();
  }

  /** A part of the manifest; the first part begins the release (or takes up one begun before this receiver restarted). */
  async begin(f: ReleaseFrame): Promise<ReleaseReply> {
    checkReleaseName(f.release);
    await this.store.checkHome(f.release);
    const k = key(f.release, f.id);
    let s = this.staging.get(k);
    if (!s) {
      if (f.offset !== 0) throw createError(ErrorCode.NO_RELEASE, `release ${f.id} is not being staged on this node (it restarted?): begin again`);
      if (await this.store.manifest(f.release, f.id)) throw createError(ErrorCode.PROTOCOL, `release ${f.id} is already staged`);
      // Only when full: a staging whose one big file takes an hour is idle between its confirmations.
      if (this.staging.size >= MAX_STAGING) this.dropIdle();
      if (this.staging.size >= MAX_STAGING) throw createError(ErrorCode.LIMIT, `${this.staging.size} releases are being staged on this node: finish one first`);
      s = { release: f.release, id: f.id, startedAt: Date.now(), touchedAt: Date.now(), entries: [], byName: new Map(), verified: new Map(), linked: new Set(), changed: new Set(), folders: new Map() };
      for (const d of await this.store.makeStaging(f.release, f.id)) s.changed.add(d);
      this.staging.set(k, s);
      this.init.log.info({ release: f.release, id: f.id }, 'release staging');
    }
    if (f.offset !== s.entries.length && f.offset + f.files.length !== s.entries.length) {
      throw createError(ErrorCode.PROTOCOL, `manifest part at ${f.offset}, expected ${s.entries.length}`);
    }
    s.touchedAt = Date.now();
    const fresh = f.offset === s.entries.length;
    for (const [i, e] of f.files.entries()) {
      checkName(ReleaseStore.fileName(f.release, f.id, e.name));
      if (fresh) {
        if (s.byName.has(e.name)) throw createError(ErrorCode.PROTOCOL, `${quoteName(e.name)} is twice in the manifest`);
        s.byName.set(e.name, f.offset + i);
        s.entries.push(e);
      }
    }
    const dir = this.store.folder(f.release, f.id);
    return { held: await this.linkHeld(s, f.files), path: dir, ...(this.init.display?.(dir) ?? { node: this.init.node }) };
  }

  /** Stagings nobody touched for ABANDONED_AFTER_MS: their names are refused again; their folders go at a later switch. */
  private dropIdle(): void {
    const now = Date.now();
    for (const [k, s] of this.staging) {
      if (now - s.touchedAt > ABANDONED_AFTER_MS) {
        this.staging.delete(k);
        this.init.log.info({ release: s.release, id: s.id }, 'release staging abandoned (idle)');
      }
    }
  }

  /**
   * Hard-links the entries this node already holds: from the current release (same sha256, mode and size
   * in its manifest), or from a release whose staging was cut off (a receiver killed, a step cancelled), after
   * hashing the file there: a re-run then sends only what the cut-off attempt did not. Returns their indices.
   */
  private async linkHeld(s: Staging, files: ManifestEntry[]): Promise<number[]> {
    const { have, from, cutOff } = await (s.sources ??= this.linkSources(s));
    const to = this.store.folder(s.release, s.id);
    const held: number[] = [];
    await inParallel([...files.keys()], 16, async (i) => {
      const e = files[i]!;
      const target = path.join(to, ...e.name.split('/'));
      try {
        const inCurrent = from === undefined ? undefined : have.get(`${e.sha256}:${e.mode}:${e.size}`);
        const source = inCurrent !== undefined ? path.join(from!, ...inCurrent.split('/')) : await this.findCutOff(s.release, cutOff, e);
        if (source === undefined) return;
        const dir = path.dirname(target);
        let made = s.folders.get(dir);
        if (!made) s.folders.set(dir, (made = ReleaseStore.folderFor(target).then((changed) => void changed.forEach((d) => s.changed.add(d)))));
        await made;
        const a = await lstat(source);
        if (!a.isFile() || a.size !== e.size) return;
        await link(source, target).catch(async (err: NodeJS.ErrnoException) => {
          // There already (a staging taken up again after a restart): kept if it is this very file.
          if (err.code !== 'EEXIST') throw err;
          if ((await lstat(target)).ino === a.ino) return;
          await rm(target, { force: true });
          await link(source, target);
        });
        s.changed.add(dir);
        if (inCurrent !== undefined) s.linked.add(e.name);
        else s.verified.set(e.name, e.sha256);
        held.push(i);
      } catch (err) {
        this.init.log.debug({ err, release: s.release }, 'hard link failed: the file is sent instead');
      }
    });
    return held.sort((a, b) => a - b);
  }

  private async linkSources(s: Staging): Promise<LinkSources> {
    const current = await this.store.current(s.release).catch(() => null);
    const manifest = current ? await this.store.manifest(s.release, current).catch(() => undefined) : undefined;
    const have = new Map(manifest ? manifest.files.map((e) => [`${e.sha256}:${e.mode}:${e.size}`, e.name]) : []);
    const from = current && manifest ? this.store.folder(s.release, current) : undefined;
    const { incomplete } = await this.store.ids(s.release).catch(() => ({ incomplete: [] as string[] }));
    const cutOff = incomplete.filter((id) => id !== s.id && !this.staging.has(key(s.release, id))).slice(-ABANDONED_SOURCES).reverse();
    return { have, from, cutOff };
  }

  /** The entry's file in a cut-off staging folder, if it is there with the same size, mode and sha256. */
  private async findCutOff(release: string, ids: string[], e: ManifestEntry): Promise<string | undefined> {
    for (const id of ids) {
      const file = path.join(this.store.folder(release, id), ...e.name.split('/'));
      const st = await lstat(file).catch(() => undefined);
      if (!st?.isFile() || st.size !== e.size || (st.mode & 0o777) !== e.mode) continue;
      if ((await hashPrefix(file, e.size)).digest('hex') === e.sha256) return file;
    }
    return undefined;
  }

  /** Every entry there and verified: the release is made durable and complete. */
  async stage(f: StageFrame): Promise<StageReply> {
    const s = this.staging.get(key(f.release, f.id));
    if (!s) throw createError(ErrorCode.NO_RELEASE, `release ${f.id} is not being staged on this node (it restarted?): begin again`);
    return this.serialised(f.release, async () => {
      if (s.entries.length !== f.files) throw createError(ErrorCode.RELEASE_INCOMPLETE, `the manifest has ${s.entries.length} of ${f.files} entries`);
      const base = this.store.folder(s.release, s.id);
      const missing: string[] = [];
      let bytes = 0;
      await inParallel(s.entries, 16, async (e) => {
        bytes += e.size;
        // Linked in this staging from a file of the size and mode wanted (and not written over since).
        if (s.linked.has(e.name)) return;
        const file = path.join(base, ...e.name.split('/'));
        const st = await stat(file).catch(() => undefined);
        const ok = st?.isFile() && st.size === e.size
          && (s.verified.get(e.name) === e.sha256 || (await hashPrefix(file, e.size)).digest('hex') === e.sha256);
        if (!ok) return void missing.push(e.name);
        // Only whether it is executable travels.
        if ((st!.mode & 0o777) !== e.mode) await chmod(file, e.mode);
      });
      if (missing.length > 0) {
        throw createError(ErrorCode.RELEASE_INCOMPLETE, `${missing.length} of ${s.entries.length} files of release ${s.id} are missing or differ (first: ${quoteName(missing[0]!)})`);
      }
      await this.makeDurable(s);
      const manifest: StoredManifest = { id: s.id, stagedAt: Date.now(), files: s.entries };
      await this.store.complete(s.release, manifest);
      this.staging.delete(key(s.release, s.id));
      this.init.log.info({ release: s.release, id: s.id, files: s.entries.length, bytes, linked: s.linked.size }, 'release staged');
      return { files: s.entries.length, bytes, linked: s.linked.size };
    });
  }

  /**
   * Every file of the release and every folder entry on disk for good, before its manifest marks it
   * complete. Its files were written without an fsync each (put-batch: nothing shows them before the
   * switch); hard-linked ones were durable already, in the release they came from, but not their new links.
   */
  private async makeDurable(s: Staging): Promise<void> {
    const base = this.store.folder(s.release, s.id);
    const written = s.entries.filter((e) => !s.linked.has(e.name)).map((e) => path.join(base, ...e.name.split('/')));
    if (written.length >= SYNCFS_MIN_FILES && (await syncFileSystem(base))) return;
    await inParallel(written, 16, syncFile);
    await this.store.syncFolders(s.release, s.id, s.entries.map((e) => e.name), s.changed);
  }

  /**
   * A sender whose connection dropped before the reply asks again: the same switch answers with the same
   * reply (awaiting it while it runs), so the action runs once. Across a restart of this receiver the
   * record is gone: `current` already at the id is not switched again, but the action runs again.
   */
  switchTo(f: SwitchFrame): Promise<SwitchReply> {
    const k = key(f.release, f.id);
    const known = this.switches.get(k);
    if (known) return known;
    const run = this.switchOnce(f);
    this.switches.set(k, run);
    if (this.switches.size > SWITCHES_REMEMBERED) this.switches.delete(this.switches.keys().next().value!);
    run.catch(() => {
      if (this.switches.get(k) === run) this.switches.delete(k);
    });
    return run;
  }

  private async switchOnce(f: SwitchFrame): Promise<SwitchReply> {
    const { previous, removed } = await this.serialised(f.release, async () => {
      const now = await this.store.current(f.release);
      const previous = now === f.id ? (await this.store.ids(f.release)).complete.filter((id) => id < f.id).at(-1) ?? null : await this.store.switchTo(f.release, f.id);
      this.init.log.info({ release: f.release, id: f.id, previous, already: now === f.id }, 'release switched');
      return { previous, removed: await this.prune(f.release, f.keep, [f.id, previous]) };
    });
    const action = f.then && (await this.runAfterSwitch(f.then, f.release, f.id, previous));
    return { previous, removed, ...(action ? { action } : {}) };
  }

  async rollback(f: RollbackFrame): Promise<RollbackReply> {
    const { previous, current } = await this.serialised(f.release, async () => {
      const now = await this.store.current(f.release);
      const { complete } = await this.store.ids(f.release);
      const to = f.to ?? complete.filter((id) => now === null || id < now).at(-1);
      if (!to) throw createError(ErrorCode.NO_RELEASE, now === null ? `${quoteName(f.release)} has no release on this node` : `${quoteName(f.release)} has no release before ${now} to roll back to`);
      if (!complete.includes(to)) throw createError(ErrorCode.NO_RELEASE, `release ${to} of ${quoteName(f.release)} is not on this node`);
      const previous = to === now ? now : await this.store.switchTo(f.release, to);
      this.init.log.info({ release: f.release, id: to, previous }, 'release rolled back');
      return { previous, current: to };
    });
    const action = f.then && (await this.runAfterSwitch(f.then, f.release, current, previous));
    return { previous, current, ...(action ? { action } : {}) };
  }

  /** Removes a release that was staged and never switched to (the other side of a two-phase send failed). */
  async discard(f: DiscardFrame): Promise<Record<string, never>> {
    this.staging.delete(key(f.release, f.id));
    await this.serialised(f.release, async () => {
      if ((await this.store.current(f.release).catch(() => null)) === f.id) return;
      await this.store.remove(f.release, f.id);
      this.init.log.info({ release: f.release, id: f.id }, 'staged release discarded');
    });
    return {};
  }

  async list(f: ListReleasesFrame): Promise<ListReleasesReply> {
    checkReleaseName(f.release);
    await this.store.checkHome(f.release);
    return this.store.list(f.release);
  }

  async checkAction(f: ActionCheckFrame): Promise<Record<string, never>> {
    if (!(await this.init.actions.has(f.action))) throw createError(ErrorCode.NO_ACTION, `no action ${quoteName(f.action)} on node ${this.init.node}`);
    return {};
  }

  /** A plain send's action: its files must be published here; one file's path, size and sha256 go in its environment. */
  async run(f: RunFrame): Promise<RunReply> {
    const env: Record<string, string> = { RELAY_FILES: String(f.count ?? f.files.length) };
    const known = f.files.map((name) => this.recent.get(name));
    const first = known[0];
    if (known.some((k) => !k)) throw createError(ErrorCode.PROTOCOL, 'an action may follow only files this receiver confirmed');
    if (f.files.length === 1 && first) {
      const st = await stat(first.path).catch(() => undefined);
      if (!st?.isFile() || st.size !== first.size) throw createError(ErrorCode.SOURCE_CHANGED, `${quoteName(f.files[0]!)} changed on the node before its action ran`);
      Object.assign(env, { RELAY_FILE_PATH: first.path, RELAY_FILE_SIZE: String(first.size), RELAY_FILE_SHA256: first.sha256 });
    }
    return { action: await this.runAction(f.then, env) };
  }

  /**
   * The switch happened whatever the action does: an action that cannot even start (removed from
   * --action-dir since the sender checked it) is a failed action in the reply, not a failed switch.
   */
  private async runAfterSwitch(then: ThenSpec, release: string, id: string, previous: string | null): Promise<ActionResult> {
    try {
      return await this.runAction(then, {
        RELAY_RELEASE: release, RELAY_RELEASE_ID: id, RELAY_RELEASE_PATH: this.store.folder(release, id),
        RELAY_CURRENT_PATH: path.join(this.store.home(release), 'current'), RELAY_PREVIOUS_RELEASE_ID: previous ?? '',
      });
    } catch (err) {
      const e = toRelayError(err);
      return { name: then.action, exitCode: null, signal: null, timedOut: false, durationMs: 0, output: `${e.code}: ${e.message}`, ok: false };
    }
  }

  private runAction(then: ThenSpec, env: Record<string, string>): Promise<ActionResult> {
    return this.init.actions.run(then.action, { RELAY_NODE: this.init.node, RELAY_ACTION: then.action, ...env }, { timeoutMs: then.timeoutMs });
  }

  /** --keep: the newest `keep` complete releases stay, and always those in `protect`; old abandoned staging folders go too. */
  private async prune(release: string, keep: number, protect: Array<string | null>): Promise<string[]> {
    const { complete, incomplete } = await this.store.ids(release);
    const keepIds = new Set([...complete.slice(-Math.max(1, keep)), ...protect.filter((p): p is string => p !== null)]);
    // Only releases older than the one switched to: a newer one is another send's, staged and about to switch.
    const newest = protect[0]!;
    const removed = complete.filter((id) => !keepIds.has(id) && newest !== null && id < newest);
    for (const id of removed) await this.store.remove(release, id);
    for (const id of incomplete) {
      if (this.staging.has(key(release, id))) continue;
      const st = await lstat(this.store.folder(release, id)).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > ABANDONED_AFTER_MS) await this.store.remove(release, id);
    }
    if (removed.length) this.init.log.info({ release, removed }, 'old releases removed (--keep)');
    return removed;
  }

  private serialised<T>(release: string, fn: () => Promise<T>): Promise<T> {
    checkReleaseName(release);
    const before = this.serial.get(release) ?? Promise.resolve();
    const checked = async (): Promise<T> => {
      await this.store.checkHome(release);
      return fn();
    };
    const run = before.then(checked, checked);
    const tail = run.catch(() => undefined);
    this.serial.set(release, tail);
    void tail.then(() => {
      if (this.serial.get(release) === tail) this.serial.delete(release);
    });
    return run;
  }
}


function key(release: string, id: string): string {
  return `${release}\0${id}`;
}

async function syncFile(file: string): Promise<void> {
  const fh = await open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
