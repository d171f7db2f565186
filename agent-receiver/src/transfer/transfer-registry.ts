/**
 * Who sends which file: at most one IncomingTransfer per final name, each held by at most one live
 * connection (its Owner) under a lease (TransferIndex). Offers and commits of a name run one at a time
 * (OfferCommitLock); every step that awaits re-checks that the owner is still there, so a connection that
 * closed mid-offer never leaves a transfer behind. Per connection: a bounded number of open transfers;
 * per transfer: an idle time after which it is released (partial kept). Free space: a SpaceBudget.
 *
 * However a transfer ends (see transfer-end.ts), the registry hears it once, from the transfer itself,
 * and reacts in one place (ended): the holding goes with its reservation, a final end forgets the name
 * once the partial is gone, and the end is passed on to `onEnded` (the receiver's metrics).
 */
import { stat } from 'node:fs/promises';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import {
  createError, ErrorCode, isRelayError, resolveInside, toWireError,
  type ChunkAck, type ChunkFrame, type CommitFrame, type IdenticalFrame, type OfferAccepted,
  type OfferFrame, type PutFrame, type ReceivedFrame,
} from '@relayer/common';
import { FinalHashCache } from '../store/final-hash-cache.js';
import { IncomingTransfer } from './incoming-transfer.js';
import { OfferCommitLock } from './offer-commit-lock.js';
import type { Owner } from '../session/owner.js';
import { partialKey, type PartialStore } from '../store/partial-store.js';
import { receivePut, type PutHost, type PutOutcome } from './put-batch.js';
import { SpaceBudget, type Reservation } from './space-budget.js';
import { Outcome, Release, type TransferEnd } from './transfer-end.js';
import { TransferIndex, type Holding } from './transfer-index.js';
import { FlushSlots } from './write-behind.js';
import { PUT_WRITES } from '../limits.js';

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
  /** Hears how each transfer ended, as its sender learns it (a put's files and refused offers too). */
  onEnded?: (end: TransferEnd) => void;
  /**
   * Throws BAD_NAME for a name not to be written now (inside a release that is not being staged): at each
   * offer, put and commit. True for a file of a release being staged (made durable when the release is staged).
   */
  guardName?: (name: string) => boolean;
}

export class TransferRegistry {
  private readonly index = new TransferIndex<IncomingTransfer>();
  private readonly budget: SpaceBudget;
  /** Background flushes of partials, one at a time over the whole receiver (see write-behind.ts). */
  private readonly flushSlots = new FlushSlots();
  private readonly lock = new OfferCommitLock();
  private readonly finals: FinalHashCache;
  private closing = false;
  private readonly putHost: PutHost;

  get limits(): RegistryLimits {
    return this.init.limits;
  }

  constructor(private readonly init: RegistryInit) {
    this.finals = new FinalHashCache(init.log);
    this.budget = new SpaceBudget(init.freeBytes, init.limits.minFree);
    this.putHost = {
      root: init.root, store: init.store, finals: this.finals, maxFileSize: init.limits.maxFileSize, writes: pLimit(PUT_WRITES),
      lockNameReplacing: (owner, name, fn) => this.lockNameReplacing(owner, name, fn),
      reserve: (bytes, what) => this.budget.reserve(bytes, what),
      ended: (end) => this.init.onEnded?.(end),
      guardName: (name) => this.init.guardName?.(name) === true,
    };
  }

  /** Transfers held by a live connection. */
  get active(): number {
    return this.index.held;
  }

  get reserved(): number {
    return this.budget.reserved;
  }

  async offer(owner: Owner, frame: OfferFrame): Promise<OfferAccepted> {
    try {
      return await this.accept(owner, frame);
    } catch (err) {
      // The offer itself was refused (no attachment of it outlives this): its sender learns so from this
      // reply alone, not from an end of the transfer.
      this.init.onEnded?.({ outcome: Outcome.REFUSED, code: toWireError(err).code });
      throw err;
    }
  }

  private async accept(owner: Owner, frame: OfferFrame): Promise<OfferAccepted> {
    const { root, store, limits } = this.init;
    this.checkOpen();
    const finalPath = await resolveInside(root, frame.name);
    this.init.guardName?.(frame.name);
    if (frame.size > limits.maxFileSize) {
      throw createError(ErrorCode.TOO_LARGE, `${frame.name} is ${frame.size} bytes, over this receiver's limit of ${limits.maxFileSize}`);
    }
    return this.lockName(owner, frame.name, async (key) => {
      const identity = { size: frame.size, mtimeMs: frame.mtimeMs };
      let transfer = this.index.named(frame.name);
      const sameSource = transfer?.identity.size === identity.size && transfer?.identity.mtimeMs === identity.mtimeMs;
      if (transfer && (!transfer.resumable || !sameSource || frame.fresh)) {
        // A different version of the file, a sender whose bytes differ, or a finished transfer: start over,
        // never splice two versions.
        await this.supersede(transfer, 'superseded by a new offer for this name', { fresh: Boolean(frame.fresh) });
        transfer = undefined;
      }
      const previous = transfer && this.index.holdingOf(transfer);
      const mine = this.index.countOf(owner);
      if (mine >= limits.maxTransfersPerConnection && previous?.owner !== owner) {
        throw createError(ErrorCode.LIMIT, `this connection already has ${mine} open transfers (limit ${limits.maxTransfersPerConnection}): finish or abort one first`);
      }
      if (!transfer && frame.fresh) await store.discard(key);
      const held = transfer ? transfer.written : await store.peek(frame.name, identity);
      // A sparse source (its offer says what it takes on disk) will take no more than that here.
      const reservation = await this.budget.reserve(Math.min(frame.size - held, frame.allocated ?? Infinity), frame.name, previous?.reservation);
      let holding: Holding<IncomingTransfer>;
      let ready: () => Promise<number>;
      const tookOver = previous !== undefined && previous.owner !== owner && !previous.owner.signal.aborted;
      try {
        this.checkLive(owner);
        transfer ??= await this.open(frame, identity, owner);
        let lease: string;
        ({ lease, ready } = transfer.attach(owner, { allocated: frame.allocated }, tookOver ? Release.TAKEN_OVER : Release.OFFERED_AGAIN));
        // Held before the attach awaits: a connection that closes meanwhile releases it like any other.
        holding = this.index.attach(transfer, owner, lease, reservation);
      } catch (err) {
        reservation.release();
        throw err;
      }
      return this.attached(holding, ready, tookOver, frame, finalPath);
    });
  }

  private async open(frame: OfferFrame, identity: { size: number; mtimeMs: number }, owner: Owner): Promise<IncomingTransfer> {
    const partial = await this.init.store.open(frame.name, identity);
    const transfer = new IncomingTransfer({
      name: frame.name, identity, partial, store: this.init.store, log: owner.log,
      flushEvery: this.init.limits.flushEvery, flushSlots: this.flushSlots, onEnded: this.ended,
    });
    if (this.closing) {
      // close() already let every transfer go: this one must not be added after that, nor keep its file open.
      await transfer.release(Release.CLOSING);
      this.checkOpen();
    }
    this.index.add(transfer);
    return transfer;
  }

  /** The rest of an offer once its transfer is held: the offset, and the answer to the sender. */
  private async attached(holding: Holding<IncomingTransfer>, ready: () => Promise<number>, tookOver: boolean, frame: OfferFrame, finalPath: string): Promise<OfferAccepted> {
    const { transfer, owner, lease, reservation } = holding;
    let offset: number;
    try {
      offset = await ready();
      this.checkLive(owner);
    } catch (err) {
      await transfer.release(Release.OFFER_FAILED, lease);
      throw err;
    }
    reservation.resize(transfer.toStore);
    const existing = await statSize(finalPath);
    transfer.log.info({ size: frame.size, offset }, offset > 0 ? 'offer accepted: resuming' : 'offer accepted');
    return {
      lease,
      offset,
      tookOver,
      ...(existing === frame.size ? { existingSize: existing } : {}),
      ...(offset > 0 ? { prefixSha256: transfer.prefixSha256() } : {}),
    };
  }

  async chunk(owner: Owner, frame: ChunkFrame): Promise<ChunkAck> {
    const { transfer, reservation } = this.heldBy(owner, frame.lease);
    try {
      const ack = await transfer.write(frame);
      const stored = transfer.storedSince();
      if (transfer.sparse && stored > reservation.held) await this.outgrown(transfer, stored - reservation.held);
      // Bytes now on disk are counted by the file system, no longer by the reservation.
      reservation.consume(stored);
      return ack;
    } catch (err) {
      // Lost the lease while the chunk waited: say why, as for a chunk that arrives after that.
      if (isRelayError(err, ErrorCode.UNKNOWN_TRANSFER)) throw this.lostLease(frame.lease);
      throw err;
    }
  }

  /** "Is the final file already these bytes?" from the cached hash of the final file; ends the transfer when so. */
  async identical(owner: Owner, frame: IdenticalFrame): Promise<{ identical: boolean; received?: ReceivedFrame }> {
    return this.lockLease(owner, frame.lease, async (transfer, finalPath) => {
      const existing = await this.finals.sha256(finalPath, transfer.size);
      this.heldBy(owner, frame.lease);
      if (existing !== frame.sha256) return { identical: false };
      const received = await transfer.confirmUnchanged(frame.sha256, finalPath);
      transfer.log.info({ size: received.size, sha256: received.sha256 }, 'file received: already identical');
      return { identical: true, received };
    });
  }

  async commit(owner: Owner, frame: CommitFrame): Promise<ReceivedFrame> {
    return this.lockLease(owner, frame.lease, async (transfer, finalPath) => {
      const received = await transfer.commit(frame.sha256, finalPath);
      transfer.log.info({ size: received.size, sha256: received.sha256, path: received.path, unchanged: false }, 'file received');
      await this.finals.remember(finalPath, received.sha256);
      return received;
    });
  }

  /** Small files whole, in one request (see put-batch.ts). */
  async put(owner: Owner, frame: PutFrame): Promise<{ results: PutOutcome[] }> {
    this.checkLive(owner);
    return receivePut(this.putHost, owner, frame);
  }

  /** The sender gave up on this lease: keep the partial for a later resume. */
  async abort(owner: Owner, lease: string): Promise<void> {
    const holding = this.index.holding(lease);
    if (holding?.owner === owner) await holding.transfer.release(Release.ABORTED, lease);
  }

  /** A connection closed: everything it held is released, partials kept for resume. */
  async release(owner: Owner): Promise<void> {
    await Promise.all(this.index.heldBy(owner).map((h) => h.transfer.release(Release.CONNECTION_LOST, h.lease)));
  }

  /** Releases transfers whose owner sent nothing for the idle time: their space is free again, partials kept. */
  async releaseIdle(now = Date.now()): Promise<void> {
    const idle = this.index.holdings().filter((h) => now - h.transfer.lastActivity > this.init.limits.transferIdleMs);
    await Promise.all(idle.map((h) => h.transfer.release(Release.IDLE, h.lease)));
  }

  /** Forgets abandoned transfers older than ttlMs; the store removes their partials. */
  async sweep(ttlMs: number, now = Date.now()): Promise<string[]> {
    for (const t of this.index.transfers()) {
      // Not one an offer has under its lock right now: that offer is about to attach it.
      if (!this.index.holdingOf(t) && !this.index.claimed(t.key) && now - t.lastActivity > ttlMs) this.index.forget(t);
    }
    // Asked live for each key: a transfer that starts while the sweep runs is never swept from under it,
    // and once the receiver closes, the rest of the sweep is skipped.
    return this.init.store.sweep(ttlMs, (key) => this.closing || this.index.inUse(key), now);
  }

  /** No offer is taken from now on; every transfer is released (partials kept). */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.index.transfers().map((t) => t.release(Release.CLOSING)));
    this.index.clear();
    // Put batches still writing hold reservations too: none counts from here on.
    this.budget.close();
  }

  /**
   * The one place a transfer's end is handled, whatever ended it: it is no longer held (its reservation
   * goes with the holding); a final end forgets the name once its partial is gone, so that an offer
   * meanwhile supersedes it (and waits for that) rather than open the partial being removed.
   */
  private readonly ended = (transfer: IncomingTransfer, end: TransferEnd): void => {
    this.index.detach(transfer);
    if (end.outcome === Outcome.RELEASED) {
      transfer.log[end.why === Release.OFFERED_AGAIN ? 'debug' : 'info']({ written: transfer.written, size: transfer.size }, end.why);
    } else {
      // Its sender is told SUPERSEDED from now on, a final answer, rather than "offer again".
      if (end.outcome === Outcome.SUPERSEDED && end.lease !== undefined) this.index.markSuperseded(end.lease);
      void transfer.whenGone().then(() => this.index.forget(transfer));
    }
    this.init.onEnded?.(end);
  };

  /** Ends the transfer of a name for a newer version; resolves once its partial is gone (the new one reuses its key). */
  private async supersede(transfer: IncomingTransfer, why: string, fields: Record<string, unknown> = {}): Promise<void> {
    if (transfer.resumable) transfer.log.info(fields, why);
    await transfer.supersede();
    this.index.forget(transfer);
  }

  /**
   * A sparse source's data outgrew what its offer said it takes (a file system that compresses counts
   * fewer blocks; or the sender is wrong): the excess is checked against the disk as it comes, and the
   * transfer refused with DISK_FULL when it would eat into --min-free.
   */
  private async outgrown(transfer: IncomingTransfer, excess: number): Promise<void> {
    try {
      await this.budget.check(transfer.name, excess);
    } catch (err) {
      await transfer.refuse(ErrorCode.DISK_FULL);
      throw err;
    }
  }

  /** Runs fn under the name's lock for a live owner (offers); the sweep leaves the name's partial alone meanwhile. */
  private async lockName<T>(owner: Owner, name: string, fn: (key: string) => Promise<T>): Promise<T> {
    const unlock = await this.lock.acquire(name, { timeoutMs: this.init.limits.lockTimeoutMs, signal: owner.signal });
    const key = partialKey(name);
    this.index.claim(key);
    try {
      this.checkLive(owner);
      return await fn(key);
    } finally {
      this.index.unclaim(key);
      unlock();
    }
  }

  /** As lockName, a transfer of that name superseded first (puts: last offer wins). */
  private lockNameReplacing<T>(owner: Owner, name: string, fn: (key: string) => Promise<T>): Promise<T> {
    return this.lockName(owner, name, async (key) => {
      const transfer = this.index.named(name);
      if (transfer) {
        await this.supersede(transfer, 'superseded by a put of this name');
        this.checkLive(owner);
      }
      return fn(key);
    });
  }

  /** Runs fn under the lock of the name the owner's lease is for (identical, commit), with its final path. */
  private async lockLease<T>(owner: Owner, lease: string, fn: (t: IncomingTransfer, finalPath: string) => Promise<T>): Promise<T> {
    const { name } = this.heldBy(owner, lease).transfer;
    const unlock = await this.lock.acquire(name, { timeoutMs: this.init.limits.lockTimeoutMs, signal: owner.signal });
    try {
      const { transfer } = this.heldBy(owner, lease);
      let finalPath: string;
      try {
        finalPath = await resolveInside(this.init.root, name);
        this.init.guardName?.(name);
      } catch (err) {
        // The name became unusable since the offer (a symlink or a folder appeared there): the refusal is
        // final, so the partial must not linger until the TTL.
        if (isRelayError(err, ErrorCode.BAD_NAME)) await transfer.refuse(ErrorCode.BAD_NAME);
        throw err;
      }
      this.heldBy(owner, lease);
      return await fn(transfer, finalPath);
    } finally {
      unlock();
    }
  }

  /** The holding of this owner under this lease, or the reason it has none. */
  private heldBy(owner: Owner, lease: string): Holding<IncomingTransfer> {
    const holding = this.index.holding(lease);
    if (holding && holding.owner === owner && holding.transfer.holds(lease) && !owner.signal.aborted) return holding;
    throw this.lostLease(lease);
  }

  private lostLease(lease: string): Error {
    if (this.index.wasSuperseded(lease)) {
      return createError(ErrorCode.SUPERSEDED, 'another sender is now sending a different version of this file (last offer wins)');
    }
    return createError(ErrorCode.UNKNOWN_TRANSFER, `transfer ${lease} is not active on this connection: offer again`);
  }

  /** After every await of an offer: the receiver still takes offers and the owner is still connected. */
  private checkLive(owner: Owner): void {
    this.checkOpen();
    if (owner.signal.aborted) throw createError(ErrorCode.DISCONNECTED, 'connection closed during the request');
  }

  private checkOpen(): void {
    if (this.closing) throw createError(ErrorCode.DISCONNECTED, 'receiver is shutting down');
  }
}

async function statSize(p: string): Promise<number | undefined> {
  const st = await stat(p).catch(() => undefined);
  return st?.isFile() ? st.size : undefined;
}
