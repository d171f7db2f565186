/** `relay send --direct`: runs a job in this process with the same engine the agent uses. */
import pLimit from 'p-limit';
import type { Logger } from '@relayer/common';
import type { JobEvent } from './job-events.js';
import { runJob } from './job.js';
import { Link } from '../link/link.js';
import type { TransferOptions } from '../transfer/transfer-options.js';
import { expandSources } from './sources.js';

export interface DirectSendOptions {
  paths: string[];
  as?: string;
  urls: string[];
  token: string;
  /** PEM CA certificate(s) trusted for https:// receivers. */
  ca?: string | Buffer;
  transfer: Partial<TransferOptions>;
  /** Transfers of files over 1 MiB at once. Default 4. */
  concurrency?: number;
  logger: Logger;
  signal?: AbortSignal;
}

export async function sendDirect(opts: DirectSendOptions, emit: (e: JobEvent) => void): Promise<boolean> {
  const { files, skipped, unsendable } = await expandSources(opts.paths, opts.as);
  const links = opts.urls.map((url) => new Link({ name: url, url, token: opts.token, logger: opts.logger, heartbeatMs: 0, ca: opts.ca }).start());
  try {
    return await runJob(
      { files, skipped, unsendable, targets: links, transfer: opts.transfer },
      { limit: pLimit(opts.concurrency ?? 4), logger: opts.logger, signal: opts.signal },
      emit,
    );
  } finally {
    for (const l of links) l.close();
  }
}
