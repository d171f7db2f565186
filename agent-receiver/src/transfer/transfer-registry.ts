/**
 * Who sends which file: at most one IncomingTransfer per final name, each held by at most one live
 * connection (its Owner) through a lease. Offers and commits of a name run one at a time (OfferCommitLock);
 * every step that awaits re-checks that the owner is still there, so a connection that closed mid-offer
 * never leaves a transfer behind. Per connection: a bounded number of open transfers; per transfer: an
 * idle time after which it is released (partial kept). Free space is accounted with a running total.
 */
import { stat } from 'node:fs/promises';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import {
  createError, ErrorCode, formatBytes, isRelayError, resolveInside,
  type ChunkAck, type ChunkFrame, type CommitFrame, type IdenticalFrame, type IdenticalReply, type OfferAccepted,
  type OfferFrame, type PutFrame, type PutReply, type ReceivedFrame,
} from '@relayer/common';
import { FinalHashCache } from '../store/final-hash-cache.js';
import { IncomingTransfer, TransferState } from './incoming-transfer.js';
import { OfferCommitLock } from './offer-commit-lock.js';
import type { Owner } from '../session/owner.js';
import { partialKey, type PartialStore } from '../store/partial-store.js';
import { receivePut, type PutHost } from './put-batch.js';
import { FlushSlots } from './write-behind.js';
import { PUT_WRITES, SUPERSEDED_MEMORY } from '../limits.js';

export interface RegistryLimits {
  maxFileSize: number;
  minFree: number;
  maxTransfersPerConnection: number;
  /** Bytes between a partial's background flushes (see write-behind.ts). */
  flushEvery: number;
  transferIdleMs: number;
  lockTimeoutMs: number;
}

export interface RegistryInit {
  root: string;
  store: PartialStore;
  limits: RegistryLimits;
  log: Logger;
  freeBytes: () => Promise<number>;
}


export class TransferRegistry {
  private readonly byName = new Map<string, IncomingTransfer>();
  /** Background flushes of partials, one at a time over the whole receiver (see write-behind.ts). */
  private readonly flushSlots = new FlushSlots();
  /** Partial keys of offers in progress (under the name lock, before they are in byName). */
  private readonly offering = new Set<string>();
  private readonly byLease = new Map<string, IncomingTransfer>();
  private readonly superseded = new Set<string>();
  private readonly owned = new Map<Owner, Set<IncomingTransfer>>();
  private readonly lock = new OfferCommitLock();
  private readonly finals: FinalHashCache;
  private reservedBytes = 0;
  private closing = false;
  private readonly putHost: PutHost;

  get limits(): RegistryLimits {
    return this.init.limits;
  }

  constructor(private readonly init: RegistryInit) {
    this.finals = new FinalHashCache(init.log);
    this.putHost = {
      root: init.root, store: init.store, finals: this.finals, maxFileSize: init.limits.maxFileSize, writes: pLimit(PUT_WRITES),
      withName: (owner, name, fn) => this.withName(owner, name, fn),
      reserve: (bytes, what) => this.reserveBytes(bytes, what),
    };
  }

  /** Transfers held by a live connection. */
  get active(): number {
    let n = 0;
    for (const set of this.owned.values()) n += set.size;
    return n;
  }

  get reserved(): number {
    return this.reservedBytes;
  }

  async offer(owner: Owner, frame: OfferFrame): Promise<OfferAccepted> {
    const { root, store, limits } = this.init;
    this.checkOpen();
    const finalPath = await resolveInside(root, frame.name);
    if (frame.size > limits.maxFileSize) {
      throw createError(ErrorCode.TOO_LARGE, `${frame.name} is ${frame.size} bytes, over this receiver's limit of ${limits.maxFileSize}`);
    }
    return this.underName(owner, frame.name, async (key) => {
      const identity = { size: frame.size, mtimeMs: frame.mtimeMs };
      let transfer = this.byName.get(frame.name);
      const sameSource = transfer?.identity.size === identity.size && transfer?.identity.mtimeMs === identity.mtimeMs;
      if (transfer && (!transfer.resumable || !sameSource || frame.fresh)) {
        // A different version of the file, a sender whose bytes differ, or a finished transfer: start over,
        // never splice two versions.
        await this.supersede(transfer, 'superseded by a new offer for this name', { fresh: Boolean(frame.fresh) });
        transfer = undefined;
      }
      const mine = this.owned.get(owner);
      if ((mine?.size ?? 0) >= limits.maxTransfersPerConnection && !(transfer && transfer.owner === owner)) {
        throw createError(ErrorCode.LIMIT, `this connection already has ${mine!.size} open transfers (limit ${limits.maxTransfersPerConnection}): finish or abort one first`);
      }
      if (!transfer && frame.fresh) await store.discard(key);
      const held = transfer ? transfer.written : await store.peek(frame.name, identity);
      // A sparse source (its offer says what it takes on disk) will take no more than that here.
      await this.checkSpace(frame.name, Math.min(frame.size - held, frame.allocated ?? Infinity), transfer?.reserved ?? 0);
      this.checkLive(owner);
      if (!transfer) {
        const partial = await store.open(frame.name, identity);
        transfer = new IncomingTransfer({
          name: frame.name, identity, partial, store, log: owner.log,
          flushEvery: limits.flushEvery, flushSlots: this.flushSlots, onDropped: this.dropped,
        });
        if (this.closing) {
          // close() already cleared the maps: this one must not be attached after them, nor keep its file open.
          await transfer.abandon();
          this.checkOpen();
        }
        this.byName.set(frame.name, transfer);
      }
      const previous = transfer.owner;
      const tookOver = previous !== undefined && previous !== owner && !previous.signal.aborted;
      if (tookOver) transfer.log.info('taken over by a new offer for the same file');
      // Owned before attach awaits: a connection that closes meanwhile releases it like any other.
      this.setOwner(transfer, owner);
      if (transfer.lease) this.byLease.delete(transfer.lease);
      let offset: number;
      try {
        offset = await transfer.attach(owner, { allocated: frame.allocated });
        this.checkLive(owner);
      } catch (err) {
        if (transfer.owner === owner) await this.releaseOne(transfer, 'offer failed: partial kept');
        throw err;
      }
      this.reserve(transfer);
      this.byLease.set(transfer.lease, transfer);
      const existing = await statSize(finalPath);
      transfer.log.info({ size: frame.size, offset }, offset > 0 ? 'offer accepted: resuming' : 'offer accepted');
      return {
        lease: transfer.lease,
        offset,
        tookOver,
        ...(existing === frame.size ? { existingSize: existing } : {}),
        ...(offset > 0 ? { prefixSha256: transfer.prefixSha256() } : {}),
      };
    });
  }

  async chunk(owner: Owner, frame: ChunkFrame): Promise<ChunkAck> {
    const transfer = this.heldBy(owner, frame.lease);
    const before = transfer.stored;
    try {
      const ack = await transfer.write(frame);
      const stored = transfer.stored - before;
      if (transfer.sparse && stored > transfer.reserved) await this.outgrown(transfer, stored - transfer.reserved);
      this.consumed(transfer, stored);
      return ack;
    } catch (err) {
      if (!transfer.resumable) {
        if (transfer.owner === owner) this.setOwner(transfer, undefined);
        this.forget(transfer);
      }
      // Lost the lease while the chunk waited: say why, as for a chunk that arrives after that.
      if (isRelayError(err, ErrorCode.UNKNOWN_TRANSFER)) throw this.lostLease(frame.lease);
      throw err;
    }
  }

  /** "Is the final file already these bytes?" from the cached hash of the final file; ends the transfer when so. */
  async identical(owner: Owner, frame: IdenticalFrame): Promise<IdenticalReply> {
    return this.underLock(owner, frame.lease, async (transfer, finalPath) => {
      const existing = await this.finals.sha256(finalPath, transfer.size);
      this.heldBy(owner, frame.lease);
      if (existing !== frame.sha256) return { identical: false };
      this.setOwner(transfer, undefined);
      const received = await transfer.confirmUnchanged(frame.sha256, finalPath);
      this.forget(transfer);
      transfer.log.info({ size: received.size, sha256: received.sha256 }, 'file received: already identical');
      return { identical: true, received };
    });
  }

  async commit(owner: Owner, frame: CommitFrame): Promise<ReceivedFrame> {
    return this.underLock(owner, frame.lease, async (transfer, finalPath) => {
      try {
        const received = await transfer.commit(frame.sha256, finalPath);
        transfer.log.info({ size: received.size, sha256: received.sha256, path: received.path, unchanged: false }, 'file received');
        await this.finals.remember(finalPath, received.sha256);
        return received;
      } finally {
        if (!transfer.resumable) {
          this.setOwner(transfer, undefined);
          this.forget(transfer);
        }
      }
    });
  }

  /** Small files whole, in one request (see put-batch.ts). */
  async put(owner: Owner, frame: PutFrame): Promise<PutReply> {
    this.checkLive(owner);
    return receivePut(this.putHost, owner, frame);
  }

  /** Runs fn under the name's lock, as an offer does, a transfer of that name superseded first (last offer wins). */
  private withName<T>(owner: Owner, name: string, fn: (key: string) => Promise<T>): Promise<T> {
    return this.underName(owner, name, async (key) => {
      const transfer = this.byName.get(name);
      if (transfer) {
        await this.supersede(transfer, 'superseded by a put of this name');
        this.checkLive(owner);
      }
      return fn(key);
    });
  }

  /** Runs fn under the name's lock for a live owner; the sweep leaves the name's partial alone meanwhile. */
  private async underName<T>(owner: Owner, name: string, fn: (key: string) => Promise<T>): Promise<T> {
    const unlock = await this.lock.acquire(name, { timeoutMs: this.init.limits.lockTimeoutMs, signal: owner.signal });
    const key = partialKey(name);
    this.offering.add(key);
    try {
      this.checkLive(owner);
      return await fn(key);
    } finally {
      this.offering.delete(key);
      unlock();
    }
  }

  /** Ends a transfer for a newer version of its file; a resumable one's sender is told SUPERSEDED. */
  private async supersede(transfer: IncomingTransfer, why: string, fields: Record<string, unknown> = {}): Promise<void> {
    if (transfer.resumable) {
      transfer.log.info(fields, why);
      if (transfer.lease) this.markSuperseded(transfer.lease);
      this.setOwner(transfer, undefined);
    }
    // Also when it was refused already (a failed write or flush): its partial must be gone before the new
    // transfer opens one under the same key. refuse() is done once; this waits for it.
    if (transfer.resumable || transfer.state === TransferState.REFUSED) await transfer.refuse();
    this.forget(transfer);
  }

  /** Reserves free space for bytes about to be written outside any transfer; returns its release. */
  private async reserveBytes(bytes: number, what: string): Promise<() => void> {
    await this.checkSpace(what, bytes);
    this.reservedBytes += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // close() zeroes the total: never take it below that.
      this.reservedBytes = Math.max(0, this.reservedBytes - bytes);
    };
  }

  /** The sender gave up on this lease: keep the partial for a later resume. */
  async abort(owner: Owner, lease: string): Promise<void> {
    const transfer = this.byLease.get(lease);
    if (!transfer || transfer.owner !== owner || !transfer.holds(lease)) return;
    await this.releaseOne(transfer, 'aborted by sender: partial kept');
  }

  /** A connection closed: everything it held is released, partials kept for resume. */
  async release(owner: Owner): Promise<void> {
    const mine = [...(this.owned.get(owner) ?? [])];
    await Promise.all(mine.map((t) => this.releaseOne(t, 'connection lost: partial kept for resume')));
    this.owned.delete(owner);
  }

  /** Releases transfers whose owner sent nothing for the idle time: their space is free again, partials kept. */
  async releaseIdle(now = Date.now()): Promise<void> {
    const idle: IncomingTransfer[] = [];
    for (const set of this.owned.values()) {
      for (const t of set) if (now - t.lastActivity > this.init.limits.transferIdleMs) idle.push(t);
    }
    await Promise.all(idle.map((t) => this.releaseOne(t, 'idle: released, partial kept for resume')));
  }

  /** Forgets abandoned transfers older than ttlMs; the store removes their partials. */
  async sweep(ttlMs: number, now = Date.now()): Promise<string[]> {
    for (const [name, t] of this.byName) if (t.owner === undefined && now - t.lastActivity > ttlMs) this.forget(t, name);
    // Asked live for each key: a transfer that starts while the sweep runs is never swept from under it,
    // and once the receiver closes, the rest of the sweep is skipped.
    const isActive = (key: string): boolean => this.closing || this.offering.has(key) || [...this.byName.values()].some((t) => t.key === key);
    return this.init.store.sweep(ttlMs, isActive, now);
  }

  /** No offer is taken from now on; every transfer is released (partials kept). */
  async close(): Promise<void> {
    this.closing = true;
    for (const t of this.byName.values()) t.reserved = 0;
    await Promise.all([...this.byName.values()].map((t) => t.abandon()));
    this.byName.clear();
    this.byLease.clear();
    this.owned.clear();
    this.reservedBytes = 0;
  }

  /** After every await of an offer: the receiver still takes offers and the owner is still connected. */
  private checkLive(owner: Owner): void {
    this.checkOpen();
    checkAlive(owner);
  }

  private checkOpen(): void {
    if (this.closing) throw createError(ErrorCode.DISCONNECTED, 'receiver is shutting down');
  }

  private async underLock<T>(owner: Owner, lease: string, fn: (t: IncomingTransfer, finalPath: string) => Promise<T>): Promise<T> {
    const { name } = this.heldBy(owner, lease);
    const unlock = await this.lock.acquire(name, { timeoutMs: this.init.limits.lockTimeoutMs, signal: owner.signal });
    try {
      const transfer = this.heldBy(owner, lease);
      let finalPath: string;
      try {
        finalPath = await resolveInside(this.init.root, name);
      } catch (err) {
        // The name became unusable since the offer (a symlink or a folder appeared there): the refusal is
        // final, so the partial must not linger until the TTL.
        if (isRelayError(err, ErrorCode.BAD_NAME)) {
          this.setOwner(transfer, undefined);
          await transfer.refuse();
          this.forget(transfer);
        }
        throw err;
      }
      this.heldBy(owner, lease);
      return await fn(transfer, finalPath);
    } finally {
      unlock();
    }
  }

  /** The transfer this owner holds under this lease, or the reason it does not. */
  private heldBy(owner: Owner, lease: string): IncomingTransfer {
    const t = this.byLease.get(lease);
    if (t && t.owner === owner && t.holds(lease) && !owner.signal.aborted) return t;
    throw this.lostLease(lease);
  }

  private lostLease(lease: string): Error {
    if (this.superseded.has(lease)) {
      return createError(ErrorCode.SUPERSEDED, 'another sender is now sending a different version of this file (last offer wins)');
    }
    return createError(ErrorCode.UNKNOWN_TRANSFER, `transfer ${lease} is not active on this connection: offer again`);
  }

  private async releaseOne(t: IncomingTransfer, why: string): Promise<void> {
    const lease = t.lease;
    this.setOwner(t, undefined);
    this.byLease.delete(lease);
    t.log.info({ written: t.written, size: t.size }, why);
    await t.abandon();
  }

  private setOwner(t: IncomingTransfer, owner: Owner | undefined): void {
    const previous = t.owner;
    if (previous) {
      const set = this.owned.get(previous);
      set?.delete(t);
      if (set?.size === 0) this.owned.delete(previous);
    }
    this.unreserve(t);
    t.owner = owner;
    if (owner) {
      let set = this.owned.get(owner);
      if (!set) this.owned.set(owner, (set = new Set()));
      set.add(t);
    }
  }

  private reserve(t: IncomingTransfer): void {
    this.unreserve(t);
    t.reserved = t.toStore;
    this.reservedBytes += t.reserved;
  }

  /**
   * A sparse source's data outgrew what its offer said it takes (a file system that compresses counts
   * fewer blocks; or the sender is wrong): the excess is checked against the disk as it comes, and the
   * transfer refused with DISK_FULL when it would eat into --min-free.
   */
  private async outgrown(t: IncomingTransfer, excess: number): Promise<void> {
    try {
      await this.checkSpace(t.name, excess);
    } catch (err) {
      await t.refuse();
      throw err;
    }
  }

  private unreserve(t: IncomingTransfer): void {
    this.reservedBytes -= t.reserved;
    t.reserved = 0;
  }

  /** Bytes now on disk are counted by the file system, no longer by the reservation. */
  private consumed(t: IncomingTransfer, bytes: number): void {
    const n = Math.min(bytes, t.reserved);
    if (n <= 0) return;
    t.reserved -= n;
    this.reservedBytes -= n;
  }

  /**
   * A transfer refused itself outside any request (a failed flush): its owner, reservation and lease go
   * now; its name only once its partial is gone, so that an offer meanwhile supersedes it (and waits for
   * that) rather than open the partial being removed.
   */
  private readonly dropped = (t: IncomingTransfer): void => {
    this.setOwner(t, undefined);
    if (t.lease && this.byLease.get(t.lease) === t) this.byLease.delete(t.lease);
    void t.refuse().catch(() => undefined).finally(() => this.forget(t));
  };

  private forget(t: IncomingTransfer, name = t.name): void {
    if (this.byName.get(name) === t) this.byName.delete(name);
    if (t.lease && this.byLease.get(t.lease) === t) this.byLease.delete(t.lease);
  }

  private markSuperseded(lease: string): void {
    this.superseded.add(lease);
    if (this.superseded.size > SUPERSEDED_MEMORY) this.superseded.delete(this.superseded.values().next().value!);
  }

  /** DISK_FULL unless `needed` more bytes leave --min-free; `ownReserved`: what the asker already holds of the total. */
  private async checkSpace(what: string, needed: number, ownReserved = 0): Promise<void> {
    const reserved = this.reservedBytes - ownReserved;
    const free = await this.init.freeBytes();
    const { minFree } = this.init.limits;
    if (free - reserved - needed < minFree) {
      // Free and promised apart: what transfers in flight will still write can be more than is free now.
      const held = reserved > 0 ? `, and transfers in flight will still write ${formatBytes(reserved)} of it` : '';
      const keep = minFree > 0 ? `, and --min-free keeps ${formatBytes(minFree)}` : '';
      throw createError(ErrorCode.DISK_FULL, `not enough space for ${what}: needs ${formatBytes(needed)} (${needed} bytes); the disk has ${formatBytes(Math.max(0, free))} free${held}${keep}`);
    }
  }
}

function checkAlive(owner: Owner): void {
  if (owner.signal.aborted) throw createError(ErrorCode.DISCONNECTED, 'connection closed during the request');
}

async function statSize(p: string): Promise<number | undefined> {
  const st = await stat(p).catch(() => undefined);
  return st?.isFile() ? st.size : undefined;
}
