/** `relay send --direct` (and `relay releases|rollback --direct`): runs in this process with the same engine the agent uses. */
import pLimit from 'p-limit';
import type { Logger, ThenSpec } from '@relayer/common';
import type { JobEvent } from './job-events.js';
import { runDeploy } from './deploy.js';
import { checkDeploy, checkRelease, checkReleaseId, checkThen, namesInRelease, refuseAsWithRelease, type ReleaseSpec } from './deploy-options.js';
import { Link } from '../link/link.js';
import { nodeRequestOptions } from './node-request.js';
import { listReleases, rollbackAll, type NodeReleases } from './release-admin.js';
import { checkTransferOptions, type TransferOptions } from '../transfer/transfer-options.js';
import { expandSources } from './sources.js';

export interface DirectLinkOptions {
  urls: string[];
  token: string;
  /** PEM CA certificate(s) trusted for https:// receivers. */
  ca?: string | Buffer;
  logger: Logger;
  signal?: AbortSignal;
}

export interface DirectSendOptions extends DirectLinkOptions {
  paths: string[];
  as?: string;
  transfer: Partial<TransferOptions>;
  release?: Partial<ReleaseSpec>;
  then?: Partial<ThenSpec>;
  /** Transfers of files over 1 MiB at once. Default 4. */
  concurrency?: number;
}

async function withLinks<T>(opts: DirectLinkOptions, run: (links: Link[]) => Promise<T>): Promise<T> {
  const links = opts.urls.map((url) => new Link({ name: url, url, token: opts.token, logger: opts.logger, heartbeatMs: 0, ca: opts.ca }).start());
  try {
    return await run(links);
  } finally {
    for (const l of links) l.close();
  }
}

export async function sendDirect(opts: DirectSendOptions, emit: (e: JobEvent) => void): Promise<boolean> {
  const deploy = checkDeploy(opts.release, opts.then);
  refuseAsWithRelease(opts.as, deploy.release);
  const sources = await expandSources(opts.paths, opts.as);
  const files = deploy.release ? namesInRelease(sources.files, opts.paths) : sources.files;
  return withLinks(opts, (links) => runDeploy(
    { files, skipped: sources.skipped, unsendable: sources.unsendable, targets: links, transfer: opts.transfer, ...deploy },
    { limit: pLimit(opts.concurrency ?? 4), logger: opts.logger, signal: opts.signal },
    emit,
  ));
}

export async function releasesDirect(opts: DirectLinkOptions & { release: string; timeoutMs?: number }): Promise<NodeReleases[]> {
  const release = checkRelease(opts.release);
  return withLinks(opts, (links) => listReleases(links, release, nodeRequestOptions(checkTransferOptions({ timeoutMs: opts.timeoutMs }), opts.logger, opts.signal)));
}

export async function rollbackDirect(opts: DirectLinkOptions & { release: string; id?: string; then?: Partial<ThenSpec>; timeoutMs?: number }, emit: (e: JobEvent) => void): Promise<boolean> {
  const release = checkRelease(opts.release);
  const then = opts.then === undefined ? undefined : checkThen(opts.then);
  const to = opts.id === undefined ? undefined : checkReleaseId(opts.id);
  return withLinks(opts, (links) => rollbackAll(links, { release, ...(to ? { to } : {}), ...(then ? { then } : {}) },
    nodeRequestOptions(checkTransferOptions({ timeoutMs: opts.timeoutMs }), opts.logger, opts.signal), emit));
}
