/**
 * `relay releases` and `relay rollback`: a release's state on each target, and switching targets back.
 * Each node answers for itself; one node's failure does not hide the others' answers.
 */
import { toRelayError, type ErrorCode, type ReleaseInfo, type ThenSpec } from '@relayer/common';
import type { Link } from '../link/link.js';
import { actionReplyMs, checkAction, once, runAction } from './deploy.js';
import type { JobEvent } from './job-events.js';
import { askNode, type NodeRequestOptions } from './node-request.js';

export type NodeReleases =
  | { target: string; ok: true; current: string | null; releases: ReleaseInfo[] }
  | { target: string; ok: false; code: ErrorCode; message: string };

export async function listReleases(links: Link[], release: string, ask: NodeRequestOptions): Promise<NodeReleases[]> {
  return Promise.all(links.map(async (link): Promise<NodeReleases> => {
    try {
      const r = await askNode(link, 'releases', { release }, ask);
      return { target: link.name, ok: true, current: r.current, releases: r.releases };
    } catch (err) {
      const e = toRelayError(err);
      return { target: link.name, ok: false, code: e.code, message: e.message };
    }
  }));
}

export interface RollbackSpec {
  release: string;
  /** The release id to switch to; default each node's release before its current one. */
  to?: string;
  then?: ThenSpec;
}

/** Switches each target back (asked once per target: a switch is not retried); true when all did and every action exited 0. */
export async function rollbackAll(links: Link[], spec: RollbackSpec, ask: NodeRequestOptions, emit: (e: JobEvent) => void): Promise<boolean> {
  const started = Date.now();
  const timeout = actionReplyMs(ask, spec.then);
  // An action a node does not define is refused before any node switches back.
  if (spec.then) await checkAction(links, spec.then.action, ask, 'no node was switched back');
  let failed = 0;
  await Promise.all(links.map(async (link) => {
    try {
      const r = await once(link, ask, () => link.request('rollback', {
        release: spec.release, ...(spec.to ? { to: spec.to } : {}), ...(spec.then ? { then: spec.then } : {}),
      }, timeout));
      emit({ type: 'release', target: link.name, release: spec.release, id: r.current, phase: 'rolled-back', previous: r.previous });
      if (r.action && !(await runAction(link, async () => r.action!, spec.then!, emit))) failed++;
    } catch (err) {
      const e = toRelayError(err);
      failed++;
      emit({ type: 'release', target: link.name, release: spec.release, id: spec.to ?? '-', phase: 'failed', code: e.code, message: `rollback failed: ${e.message}` });
    }
  }));
  emit({ type: 'done', ok: failed === 0, confirmed: links.length - failed, failed, bytes: 0, elapsedMs: Date.now() - started, skipped: 0 });
  return failed === 0;
}
