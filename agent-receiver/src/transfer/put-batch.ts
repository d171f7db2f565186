/**
 * The files of one put frame: small files that travel whole. Each is held to what a committed transfer
 * is held to (its sha256 matched, fsynced, renamed under its final name, the folder fsynced before it is
 * confirmed) but the batch shares what can be shared: one round trip, one space check, each folder
 * checked and fsynced once, and the files written in parallel so the file system groups their fsyncs into
 * few journal commits. Files succeed or fail one by one; a failure never leaves bytes under a final name.
 * A file of a release being staged is the exception to the fsyncs: nothing shows it before the release's
 * switch, and the release's stage makes all of its files durable at once (releases.ts, makeDurable).
 */
import { createHash } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { LimitFunction } from 'p-limit';
import {
  createError, ErrorCode, inspectInside, putLease, toWireError,
  type FolderChecks, type PutFile, type PutFrame, type ReceivedFrame, type WireError,
} from '@relayer/common';
import type { FinalHashCache } from '../store/final-hash-cache.js';
import { PUBLISHED_FILE_MODE } from './incoming-transfer.js';
import type { Owner } from '../session/owner.js';
import { againIfGone, fsyncDir, makeFolder } from '../store/durable-folders.js';
import type { PartialStore } from '../store/partial-store.js';
import type { Reservation } from './space-budget.js';
import { Outcome, type TransferEnd } from './transfer-end.js';

/** What a put needs from the receiver's registry. */
export interface PutHost {
  root: string;
  store: PartialStore;
  finals: FinalHashCache;
  maxFileSize: number;
  /** Bounds the files being written at once, over every connection (each holds a descriptor). */
  writes: LimitFunction;
  /** Runs fn under the name's lock, any transfer of that name superseded first (last offer wins). */
  lockNameReplacing<T>(owner: Owner, name: string, fn: (key: string) => Promise<T>): Promise<T>;
  /** Reserves free space for `bytes` (DISK_FULL when short). */
  reserve(bytes: number, what: string): Promise<Reservation>;
  /** Hears how each file of the batch ended: each is a transfer of its own. */
  ended(end: TransferEnd): void;
  /**
   * Throws BAD_NAME for a name this receiver does not write now (inside a release not being staged).
   * True for a file of a release being staged: invisible until the switch, it is made durable with the
   * whole release when it is staged, so it is neither fsynced nor its folder synced here.
   */
  guardName(name: string): boolean;
}

/**
 * Whether a file created with PUBLISHED_FILE_MODE keeps it (the umask strips none of its bits), so no
 * fchmod per file is needed. Read once: process.umask() without an argument briefly sets the mask to read it.
 */
const MODE_KEPT = (process.umask() & PUBLISHED_FILE_MODE) === 0;

interface Placed {
  path: string;
  unchanged: boolean;
}

/** Each file's outcome, in the frame's order: its confirmation, or the coded error it was refused with. */
export type PutOutcome = { ok: true; received: ReceivedFrame } | { ok: false; error: WireError };

export async function receivePut(host: PutHost, owner: Owner, frame: PutFrame): Promise<{ results: PutOutcome[] }> {
  const bytes = frame.files.reduce((n, f) => n + f.data.length, 0);
  let reservation: Reservation;
  try {
    reservation = await host.reserve(bytes, `${frame.files.length} file(s)`);
  } catch (err) {
    const { code } = toWireError(err);
    frame.files.forEach(() => host.ended({ outcome: Outcome.REFUSED, code }));
    throw err;
  }
  try {
    const batch = new PutBatch(host);
    const placed = await Promise.all(frame.files.map((f) => host.writes(() => batch.place(owner, f)).then(
      (p): Placed | Error => p,
      (err: unknown): Error => err as Error,
    )));
    // Renamed files are durable only once their folders are: nothing is confirmed before this.
    const unsynced = await batch.syncFolders();
    const results: PutOutcome[] = [];
    frame.files.forEach((file, i) => {
      let p = placed[i]!;
      if (!(p instanceof Error) && unsynced) p = unsynced;
      if (p instanceof Error) {
        const error = toWireError(p);
        results.push({ ok: false, error });
        host.ended({ outcome: Outcome.REFUSED, code: error.code });
        owner.log[error.code === ErrorCode.IO ? 'error' : 'info']({ file: file.name, code: error.code, reason: error.message }, 'file refused');
        return;
      }
      const lease = putLease(frame.id, i);
      const received: ReceivedFrame = { lease, name: file.name, size: file.data.length, sha256: file.sha256, path: p.path, unchanged: p.unchanged };
      owner.log.info({ lease, file: file.name, size: received.size, sha256: file.sha256, path: p.path, unchanged: p.unchanged },
        p.unchanged ? 'file received: already identical' : 'file received');
      results.push({ ok: true, received });
      host.ended(p.unchanged ? { outcome: Outcome.UNCHANGED } : { outcome: Outcome.PUBLISHED, bytes: file.data.length });
    });
    return { results };
  } finally {
    reservation.release();
  }
}

class PutBatch {
  private readonly folders: FolderChecks = new Map();
  /** mkdir -p of each parent folder, once per batch. */
  private readonly parents = new Map<string, Promise<void>>();
  /** Folders whose entries changed: the parents of renamed files and of new sub-folders. */
  private readonly dirty = new Set<string>();

  /** The receiver's folders checked once per batch (see PartialStore.guard). */
  private guarded: Promise<void> | undefined;

  constructor(private readonly host: PutHost) {}

  /** Verifies one file and publishes it under its name (not yet durable: see syncFolders). */
  async place(owner: Owner, file: PutFile): Promise<Placed> {
    const { host } = this;
    if (file.data.length > host.maxFileSize) {
      throw createError(ErrorCode.TOO_LARGE, `${file.name} is ${file.data.length} bytes, over this receiver's limit of ${host.maxFileSize}`);
    }
    const deferred = host.guardName(file.name);
    const actual = createHash('sha256').update(file.data).digest('hex');
    if (actual !== file.sha256) {
      throw createError(ErrorCode.CHECKSUM, `sha256 mismatch for ${file.name}: sender says ${file.sha256}, received bytes hash to ${actual}`);
    }
    await (this.guarded ??= host.store.guard());
    return host.lockNameReplacing(owner, file.name, async (key) => {
      const { path: finalPath, existing } = await inspectInside(host.root, file.name, this.folders);
      if (existing?.isFile() && existing.size === file.data.length && (await host.finals.sha256(finalPath, existing.size)) === file.sha256) {
        return { path: finalPath, unchanged: true };
      }
      const temp = await this.writeTemp(host.store.putPath(key), file.data, !deferred);
      try {
        await this.parent(path.dirname(finalPath));
        await rename(temp, finalPath);
      } catch (err) {
        await rm(temp, { force: true });
        throw err;
      }
      if (!deferred) this.dirty.add(path.dirname(finalPath));
      return { path: finalPath, unchanged: false };
    });
  }

  /**
   * Writes the bytes to a temporary file in the partial folder and fsyncs it (unless `sync` is false);
   * removes it again on any failure. Created with its published mode: the folder (0700) keeps it private
   * until the rename.
   */
  private async writeTemp(temp: string, data: Uint8Array, sync: boolean): Promise<string> {
    const fh = await againIfGone(() => open(temp, 'w', PUBLISHED_FILE_MODE), () => this.host.store.recreate());
    try {
      for (let at = 0; at < data.length;) at += (await fh.write(data, at, data.length - at, at)).bytesWritten;
      if (!MODE_KEPT) await fh.chmod(PUBLISHED_FILE_MODE);
      if (sync) await fh.sync();
      await fh.close();
      return temp;
    } catch (err) {
      await fh.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw err;
    }
  }

  private parent(dir: string): Promise<void> {
    let made = this.parents.get(dir);
    if (!made) {
      made = makeFolder(dir).then((changed) => {
        for (const d of changed) this.dirty.add(d);
      });
      this.parents.set(dir, made);
    }
    return made;
  }

  /** fsyncs every folder the batch changed, once each; the first failure, if any (it fails the whole batch). */
  async syncFolders(): Promise<Error | undefined> {
    const failures = await Promise.all([...this.dirty].map((d) => fsyncDir(d).then(() => undefined, (err: Error) => err)));
    return failures.find((e) => e !== undefined);
  }
}
