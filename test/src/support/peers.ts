/** In-process receivers, links and sends, on 127.0.0.1 with ephemeral ports, closed after the test. */
import { randomBytes } from 'node:crypto';
import { Receiver } from '@relayer/agent-receiver';
import { Link, sendDirect, type JobEvent, type TransferOptions } from '@relayer/agent-sender';
import type { CommitFrame, ReceivedFrame } from '@relayer/common';
import { tmpDir } from './files.js';
import { testLogger, track } from './lifecycle.js';

export const TOKEN = 'test-token-' + randomBytes(8).toString('hex');

export type TestReceiver = Receiver & { dir: string };

/** A receiver on 127.0.0.1, port 0, in a fresh temp folder, closed after the test. */
export async function startReceiver(opts: Partial<ConstructorParameters<typeof Receiver>[0]> = {}): Promise<TestReceiver> {
  const dir = opts.dir ?? (await tmpDir('relay-inbox-'));
  const r = new Receiver({ host: '127.0.0.1', port: 0, token: TOKEN, minFree: 0, logger: testLogger('receiver'), ...opts, dir });
  await r.start();
  track(() => r.close());
  return Object.assign(r, { dir });
}

/** A started Link, closed after the test. */
export function startLink(url: string, opts: { token?: string; heartbeatMs?: number; name?: string } = {}): Link {
  const link = new Link({ name: opts.name ?? url, url, token: opts.token ?? TOKEN, logger: testLogger('link'), heartbeatMs: opts.heartbeatMs ?? 0 }).start();
  track(() => link.close());
  return link;
}

/** A started Link that is connected (waits for the handshake), closed after the test. */
export async function connectedLink(url: string, opts: { token?: string; name?: string } = {}): Promise<Link> {
  const link = startLink(url, opts);
  await link.ready(10_000);
  return link;
}

export interface SendResult {
  ok: boolean;
  events: JobEvent[];
  received: Extract<JobEvent, { type: 'received' }>[];
  failed: Extract<JobEvent, { type: 'failed' }>[];
}

/** `relay send --direct` as a library call; collects the event stream. */
export async function send(
  paths: string[],
  urls: string[],
  opts: { as?: string; token?: string; ca?: string | Buffer; transfer?: Partial<TransferOptions>; signal?: AbortSignal; onEvent?: (e: JobEvent) => void } = {},
): Promise<SendResult> {
  const events: JobEvent[] = [];
  const ok = await sendDirect({
    paths, urls, as: opts.as, token: opts.token ?? TOKEN, ca: opts.ca, logger: testLogger('sender'), signal: opts.signal,
    transfer: { timeoutMs: 20_000, ackTimeoutMs: 10_000, ...opts.transfer },
  }, (e) => {
    events.push(e);
    opts.onEvent?.(e);
  });
  return {
    ok,
    events,
    received: events.filter((e): e is SendResult['received'][number] => e.type === 'received'),
    failed: events.filter((e): e is SendResult['failed'][number] => e.type === 'failed'),
  };
}

/** A commit through `link`, resolving with its confirmation: the "received" that must come before its ack. */
export async function commitFile(link: Link, frame: CommitFrame, timeoutMs: number): Promise<ReceivedFrame> {
  const { received: [received] } = await link.requestConfirming('commit', frame, timeoutMs, [frame.lease]);
  if (!received) throw new Error(`the commit of ${frame.lease} was acked without a "received" confirmation`);
  return received;
}
