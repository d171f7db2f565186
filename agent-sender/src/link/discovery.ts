/**
 * Receiver discovery: every address behind a DNS name (e.g. `tasks.receiver` on a Swarm overlay) is one
 * receiver. A new address is asked its node name (GET /healthz, the same `node` its heartbeats report)
 * and gets a Link named after it; the name is resolved again every interval, so a node that joins
 * appears. A receiver whose address left DNS is usually restarting (a Swarm task leaves `tasks.*` while
 * it restarts, and often comes back at a new address), so it is kept for a grace period: shown as
 * disconnected, still part of `--to all`, its transfers waiting as for any disconnected receiver. An
 * address that identifies as the same node within the grace gets the same Link (retargeted), and the
 * transfers resume; only after the grace is the link closed, failing what waits on it with UNREACHABLE.
 * Two addresses reporting the same node name stay two receivers: the second is named
 * `<node>@<address>`, and a warning says so.
 */
import { EventEmitter } from 'node:events';
import { createError, ErrorCode, type Logger } from '@relayer/common';
import type { DiscoverEntry, Resolver } from '../agent/agent-options.js';
import type { Link, LinkSnapshot } from './link.js';

export interface DiscoveryHost {
  /** Every link the agent has, by name; names are unique across configured and discovered receivers. */
  links: Map<string, Link>;
  /** Creates and starts a link the way the agent does for configured receivers. */
  createLink(name: string, url: string): Link;
}

export interface DiscoveryOptions {
  entry: DiscoverEntry;
  resolver: Resolver;
  everyMs: number;
  /** How long a receiver whose address left DNS is kept (waiting for it to come back) before it is closed. */
  graceMs: number;
  probeTimeoutMs: number;
  host: DiscoveryHost;
  logger: Logger;
}

interface Known {
  name: string;
  /** The node name as the receiver reported it (before it was made a safe receiver name). */
  node: string;
  link: Link;
}

export interface DiscoveryEvents {
  /** One round is over: the addresses the name resolved to (sorted). */
  refreshed: [addresses: string[]];
  added: [name: string, address: string];
  /** Its address left DNS: the receiver is kept, disconnected, for the grace period. */
  detached: [name: string, address: string];
  /** It came back within the grace at `address` (the same or a new one): the same link now points there. */
  returned: [name: string, address: string];
  removed: [name: string, address: string];
}

/** Resolver errors that mean "this name has no addresses now" (every receiver left), not "DNS is down". */
const NO_ADDRESSES = new Set(['ENOTFOUND', 'ENODATA', 'EAI_NONAME', 'EAI_NODATA']);

export class Discovery extends EventEmitter<DiscoveryEvents> {
  private readonly known = new Map<string, Known>();
  /** Addresses in DNS whose /healthz did not answer yet: shown in status, probed again next round. */
  private readonly pending = new Map<string, string>();
  /** Receivers whose address left DNS, by receiver name, within their grace period. */
  private readonly gone = new Map<string, Known & { address: string; timer: NodeJS.Timeout }>();
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private first: Promise<void> | undefined;

  constructor(private readonly opts: DiscoveryOptions) {
    super();
    this.log = opts.logger.child({ discover: this.label });
  }

  get label(): string {
    return `${this.opts.entry.host}:${this.opts.entry.port}`;
  }

  /** Starts the rounds; the promise is the first round (the agent waits for it, within a bound). */
  start(): Promise<void> {
    this.first ??= this.round();
    return this.first;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const g of this.gone.values()) clearTimeout(g.timer);
    this.gone.clear();
  }

  /** Rows for `relay status` for addresses that are in DNS but not identified yet. */
  pendingSnapshots(): LinkSnapshot[] {
    return [...this.pending].map(([address, reason]) => ({
      name: address, url: this.urlOf(address), state: 'disconnected', rttMs: null, lastHeartbeatAgoMs: null, node: null,
      freeBytes: null, activeTransfers: null, version: null,
      lastError: { code: ErrorCode.UNREACHABLE, message: `discovered by ${this.label}, not identified yet: ${reason}` },
    }));
  }

  private async round(): Promise<void> {
    try {
      await this.refresh();
    } catch (err) {
      this.log.warn({ err }, 'discovery round failed');
    }
    if (!this.closed) {
      this.timer = setTimeout(() => void this.round(), this.opts.everyMs);
      this.timer.unref();
    }
  }

  private urlOf(address: string): string {
    return `http://${address.includes(':') ? `[${address}]` : address}:${this.opts.entry.port}`;
  }

  private async resolve(): Promise<string[] | undefined> {
    try {
      return [...new Set(await this.opts.resolver(this.opts.entry.host))].sort();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code && NO_ADDRESSES.has(code)) return [];
      // DNS trouble is not evidence that receivers left: keep what we have.
      this.log.warn({ code, reason: (err as Error).message }, 'cannot resolve: keeping the receivers known so far');
      return undefined;
    }
  }

  private async refresh(): Promise<void> {
    const addresses = await this.resolve();
    if (this.closed || addresses === undefined) return;
    const present = new Set(addresses);
    for (const [address, k] of this.known) {
      if (!present.has(address)) this.detach(address, k);
      else if (k.link.status && k.link.status.node !== k.node) {
        this.log.warn({ address, was: k.node, now: k.link.status.node }, 'address now reports another node: identifying it again');
        this.remove(address, k, `${address} now reports node ${k.link.status.node}`);
      }
    }
    for (const address of this.pending.keys()) if (!present.has(address)) this.pending.delete(address);
    const fresh = addresses.filter((a) => !this.known.has(a));
    const probed = await Promise.all(fresh.map(async (a) => [a, await this.probe(a)] as const));
    for (const [address, result] of probed) {
      if (this.closed) return;
      if (!present.has(address) || this.known.has(address)) continue;
      if (!('node' in result)) {
        if (!this.pending.has(address)) this.log.warn({ address, reason: result.error }, 'discovered receiver does not answer yet');
        this.pending.set(address, result.error);
        continue;
      }
      this.pending.delete(address);
      const back = [...this.gone.values()].find((g) => g.node === result.node);
      if (back) this.comeBack(address, back);
      else this.add(address, result.node);
    }
    this.emit('refreshed', addresses);
  }

  private add(address: string, node: string): void {
    const { links } = this.opts.host;
    // The name is typed in `--to` and shown in logs: letters, digits, . _ - only, and never "all".
    let name = node.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
    if (name === 'all') name = 'all_';
    if (links.has(name)) {
      const taken = name;
      name = `${taken}@${address}`;
      this.log.warn({ address, node, name }, `another receiver is already named ${taken}: two addresses report the same node name; this one is ${name}`);
    }
    if (links.has(name)) return; // the same address under two --discover names: one link is enough
    const link = this.opts.host.createLink(name, this.urlOf(address));
    links.set(name, link);
    this.known.set(address, { name, node, link });
    this.log.info({ receiver: name, address, node }, 'receiver discovered');
    this.emit('added', name, address);
  }

  /** Its address left DNS: keep it (disconnected, waiting transfers kept) for the grace period. */
  private detach(address: string, k: Known): void {
    const why = `its address ${address} is no longer in DNS for ${this.opts.entry.host}`;
    this.known.delete(address);
    const { graceMs } = this.opts;
    if (graceMs <= 0) return this.remove(address, k, why);
    k.link.detach(createError(ErrorCode.UNREACHABLE, `receiver ${k.name} left DNS (${why}); kept ${Math.round(graceMs / 1000)}s for it to come back`));
    const timer = setTimeout(() => this.expire(gone, `${why}, and it did not come back within ${Math.round(graceMs / 1000)}s`), graceMs);
    timer.unref();
    const gone = { ...k, address, timer };
    this.gone.set(k.name, gone);
    this.log.warn({ receiver: k.name, address, graceMs }, 'discovered receiver left DNS: keeping it for the grace period');
    this.emit('detached', k.name, address);
  }

  private expire(g: Known & { address: string; timer: NodeJS.Timeout }, why: string): void {
    clearTimeout(g.timer);
    if (this.gone.get(g.name) === g) this.gone.delete(g.name);
    this.remove(g.address, g, why);
  }

  /** The same node answers again within the grace (at the same or a new address): retarget its link. */
  private comeBack(address: string, g: Known & { address: string; timer: NodeJS.Timeout }): void {
    clearTimeout(g.timer);
    this.gone.delete(g.name);
    if (this.opts.host.links.get(g.name) !== g.link) return this.add(address, g.node);
    g.link.retarget(this.urlOf(address));
    this.known.set(address, { name: g.name, node: g.node, link: g.link });
    this.log.info({ receiver: g.name, address, was: g.address }, 'discovered receiver is back');
    this.emit('returned', g.name, address);
  }

  private remove(address: string, k: Known, why: string): void {
    if (this.known.get(address)?.link === k.link) this.known.delete(address);
    if (this.opts.host.links.get(k.name) === k.link) this.opts.host.links.delete(k.name);
    k.link.close(createError(ErrorCode.UNREACHABLE, `receiver ${k.name} left: ${why}`));
    this.log.info({ receiver: k.name, address, reason: why }, 'discovered receiver gone');
    this.emit('removed', k.name, address);
  }

  /** Asks an address for its node name; the answer is shown and used as a receiver name, so it is checked. */
  private async probe(address: string): Promise<{ node: string } | { error: string }> {
    try {
      const res = await fetch(`${this.urlOf(address)}/healthz`, { signal: AbortSignal.timeout(this.opts.probeTimeoutMs) });
      const body = (await res.json()) as { node?: unknown };
      if (typeof body.node !== 'string' || body.node.length === 0) return { error: 'its /healthz reports no node name' };
      return { node: body.node };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      return { error: e.cause?.code ?? e.message };
    }
  }
}
