/**
 * What a job's event stream adds up to, per target, in the order the header names them: what is confirmed
 * (files, bytes, where they landed), what runs, what failed, and whether the target is reachable now.
 * The progress view and the summaries both read it, so they never disagree.
 */
import path from 'node:path';
import { printable } from '@relayer/common';
import type { JobEvent } from '../job/job-events.js';

/** A target down this long is shown as waiting (a link that is only connecting is not news). */
export const WAIT_SAID_AFTER_MS = 1500;

export interface TargetTally {
  readonly name: string;
  /** Files and bytes the job sends to this target; entries that fail before being sent (see 'queued'). */
  files: number;
  unsendable: number;
  bytes: number;
  confirmed: number;
  confirmedBytes: number;
  failed: number;
  /** The first failure, for the summary. */
  firstFailure?: { name: string; code: string; message: string };
  /** Acked bytes of the transfers still running, by file name. */
  running: Map<string, number>;
  /** The link's state as last reported ('connected' unless told otherwise) and why it is not. */
  link: string;
  linkReason?: string;
  /** When the link left 'connected' (ms since epoch). */
  linkSince: number;
  /** The folder that holds everything confirmed on this target, as its node names it (node:path). */
  landed?: { node: string; dir: string };
  startedAt: number;
  finishedAt?: number;
}

/** Bytes acked on a target so far: confirmed files and the parts of running ones. */
export function ackedBytes(t: TargetTally): number {
  let n = t.confirmedBytes;
  for (const v of t.running.values()) n += v;
  return n;
}

/** The longest folder both paths lie in ('/'-separated paths). */
function commonDir(a: string, b: string): string {
  const x = a.split('/');
  const y = b.split('/');
  let i = 0;
  while (i < x.length && i < y.length && x[i] === y[i]) i++;
  return x.slice(0, i).join('/') || '/';
}

export class JobTally {
  readonly targets = new Map<string, TargetTally>();
  files = 0;
  bytes = 0;

  /** Takes one event; returns the target it concerns, if any. */
  add(e: JobEvent): TargetTally | undefined {
    const now = Date.now();
    switch (e.type) {
      case 'queued':
        this.files = e.files;
        this.bytes = e.bytes;
        for (const name of e.targets) {
          this.targets.set(name, {
            name, files: e.files, unsendable: e.unsendable, bytes: e.bytes, confirmed: 0, confirmedBytes: 0, failed: 0, running: new Map(),
            link: 'connected', linkSince: now, startedAt: now,
          });
        }
        return undefined;
      case 'target': {
        const t = this.targets.get(e.target);
        if (t && t.link !== e.state) {
          t.link = e.state;
          t.linkSince = now;
        }
        // The reason may quote the receiver (a refusal's message): never let it drive the terminal.
        if (t) t.linkReason = e.reason === undefined ? undefined : printable(e.reason);
        return t;
      }
      case 'start':
        this.targets.get(e.target)?.running.set(e.name, 0);
        return this.targets.get(e.target);
      case 'progress':
        this.targets.get(e.target)?.running.set(e.name, e.acked);
        return this.targets.get(e.target);
      case 'received': {
        const t = this.targets.get(e.target);
        if (!t) return undefined;
        t.running.delete(e.name);
        t.confirmed++;
        t.confirmedBytes += e.size;
        // A sender whose receiver just confirmed a file is reachable, whatever the last state event said.
        t.link = 'connected';
        const where = e.displayPath ?? e.path;
        const dir = path.posix.dirname(where);
        const node = e.node ?? e.target;
        t.landed = t.landed ? { node, dir: commonDir(t.landed.dir, dir) } : { node, dir: t.files === 1 ? where : dir };
        this.settle(t, now);
        return t;
      }
      case 'failed': {
        const t = this.targets.get(e.target);
        if (!t) return undefined;
        t.running.delete(e.name);
        t.failed++;
        t.firstFailure ??= { name: e.name, code: e.code, message: e.message };
        this.settle(t, now);
        return t;
      }
      case 'release':
      case 'action':
        return this.targets.get(e.target);
      case 'done':
        for (const t of this.targets.values()) t.finishedAt ??= now;
        return undefined;
    }
  }

  private settle(t: TargetTally, now: number): void {
    if (t.confirmed + t.failed >= t.files + t.unsendable) t.finishedAt ??= now;
  }

  get list(): TargetTally[] {
    return [...this.targets.values()];
  }
}
