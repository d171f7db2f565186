/**
 * Which transfers exist and who holds them: at most one transfer per name, and at most one holding per
 * transfer (its owner, its lease, the space reserved for it). A holding is made and ended in one call
 * each, which updates every map at once, so no map ever names a holding another has dropped; ending one
 * releases its reservation. Also remembers the leases of superseded transfers (their senders are told
 * SUPERSEDED, a final answer, rather than UNKNOWN_TRANSFER), the most recent SUPERSEDED_MEMORY of them.
 */
import { SUPERSEDED_MEMORY } from '../limits.js';
import type { Owner } from '../session/owner.js';
import type { Reservation } from './space-budget.js';

/** What the index needs of a transfer: its final name and the key of its partial. */
export interface Indexed {
  readonly name: string;
  readonly key: string;
}

export interface Holding<T extends Indexed> {
  readonly transfer: T;
  readonly owner: Owner;
  readonly lease: string;
  readonly reservation: Reservation;
}

export class TransferIndex<T extends Indexed> {
  private readonly byName = new Map<string, T>();
  private readonly byKey = new Map<string, T>();
  private readonly byLease = new Map<string, Holding<T>>();
  private readonly byTransfer = new Map<T, Holding<T>>();
  private readonly byOwner = new Map<Owner, Set<Holding<T>>>();
  /** Keys of names under their lock right now (an offer or a put before its transfer, if any, is named). */
  private readonly claims = new Set<string>();
  private readonly superseded = new Set<string>();

  constructor(private readonly supersededMemory = SUPERSEDED_MEMORY) {}

  /** Transfers held by a live connection. */
  get held(): number {
    return this.byTransfer.size;
  }

  named(name: string): T | undefined {
    return this.byName.get(name);
  }

  /** Every transfer, held or not. */
  transfers(): T[] {
    return [...this.byName.values()];
  }

  /** Names a new transfer; its name must be free (a transfer of it is superseded and forgotten first). */
  add(transfer: T): void {
    const other = this.byName.get(transfer.name);
    if (other && other !== transfer) throw new Error(`${transfer.name} already has a transfer`);
    this.byName.set(transfer.name, transfer);
    this.byKey.set(transfer.key, transfer);
  }

  /** Drops the transfer (and its holding): a later offer of its name starts a new one. */
  forget(transfer: T): void {
    this.detach(transfer);
    if (this.byName.get(transfer.name) === transfer) this.byName.delete(transfer.name);
    if (this.byKey.get(transfer.key) === transfer) this.byKey.delete(transfer.key);
  }

  /** Gives a named, unheld transfer to `owner` under a new lease, with the space reserved for it. */
  attach(transfer: T, owner: Owner, lease: string, reservation: Reservation): Holding<T> {
    if (this.byName.get(transfer.name) !== transfer) throw new Error(`${transfer.name}: attach of a transfer not in the index`);
    if (this.byTransfer.has(transfer)) throw new Error(`${transfer.name}: attached twice (its holding must end first)`);
    if (this.byLease.has(lease)) throw new Error(`lease ${lease} is in use`);
    const holding: Holding<T> = { transfer, owner, lease, reservation };
    this.byTransfer.set(transfer, holding);
    this.byLease.set(lease, holding);
    let mine = this.byOwner.get(owner);
    if (!mine) this.byOwner.set(owner, (mine = new Set()));
    mine.add(holding);
    return holding;
  }

  /** Ends the transfer's holding, if it has one, and releases its reservation; its name stays. */
  detach(transfer: T): void {
    const holding = this.byTransfer.get(transfer);
    if (!holding) return;
    this.byTransfer.delete(transfer);
    this.byLease.delete(holding.lease);
    const mine = this.byOwner.get(holding.owner);
    mine?.delete(holding);
    if (mine?.size === 0) this.byOwner.delete(holding.owner);
    holding.reservation.release();
  }

  holding(lease: string): Holding<T> | undefined {
    return this.byLease.get(lease);
  }

  holdingOf(transfer: T): Holding<T> | undefined {
    return this.byTransfer.get(transfer);
  }

  /** What `owner` holds now (a copy: ending one while iterating is fine). */
  heldBy(owner: Owner): Holding<T>[] {
    return [...(this.byOwner.get(owner) ?? [])];
  }

  countOf(owner: Owner): number {
    return this.byOwner.get(owner)?.size ?? 0;
  }

  holdings(): Holding<T>[] {
    return [...this.byTransfer.values()];
  }

  /** The key's name is under its lock: the sweep leaves its partial alone. */
  claim(key: string): void {
    this.claims.add(key);
  }

  unclaim(key: string): void {
    this.claims.delete(key);
  }

  claimed(key: string): boolean {
    return this.claims.has(key);
  }

  /** A transfer of the key exists, or its name is under its lock: its partial must not be swept. */
  inUse(key: string): boolean {
    return this.claims.has(key) || this.byKey.has(key);
  }

  markSuperseded(lease: string): void {
    this.superseded.add(lease);
    if (this.superseded.size > this.supersededMemory) this.superseded.delete(this.superseded.values().next().value!);
  }

  wasSuperseded(lease: string): boolean {
    return this.superseded.has(lease);
  }

  /** Forgets every transfer and holding (their reservations released); superseded leases are still told so. */
  clear(): void {
    for (const t of this.transfers()) this.forget(t);
  }
}
