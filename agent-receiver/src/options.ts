/** The receiver's options and their defaults, merged in one place. Only the CLI reads argv and env. */
import os from 'node:os';
import path from 'node:path';
import { createLogger, DEFAULT_PORT, definedOnly, type Logger } from '@relayer/common';

export interface ReceiverOptions {
  /** Address to listen on. Default 0.0.0.0. */
  host: string;
  /** Port; 0 picks a free one (tests). Default 7420. */
  port: number;
  /** Folder files are published into. Default ./relay-inbox. */
  dir: string;
  /** Shared secret senders must present. Required. */
  token: string;
  /** Largest file accepted. Default 100 GiB. */
  maxFileSize: number;
  /** Refuse an offer that would leave less free space than this. Default 1 GiB. */
  minFree: number;
  /** Partials untouched this long are removed. Default 24h. */
  partialTtlMs: number;
  /** Name reported in heartbeats and /healthz. Default the host name. */
  node: string;
  /** Socket.IO ping interval / timeout: how fast a dead sender is noticed. Default 10s / 10s. */
  pingIntervalMs: number;
  pingTimeoutMs: number;
  /** Transfers one connection may hold open at once; more offers get LIMIT. Default 64. */
  maxTransfersPerConnection: number;
  /** Chunk bytes one connection may make the receiver hold; beyond it, reading from it stops. Default 4 MiB
   * (enough to keep the disk busy; the rest of a sender's window waits in TCP buffers, outside the process.
   * A larger budget costs RSS twice: held chunks outlive two scavenges, then their garbage waits for a major GC). */
  maxBufferedBytesPerConnection: number;
  /** A held transfer with no request for this long is released (partial kept, space freed). Default 5 min. */
  transferIdleMs: number;
  /** Longest wait for another offer or commit of the same name. Default 30s. */
  lockTimeoutMs: number;
  /** Interval of the one-line status summary at info. Default 60s; 0 disables it. */
  summaryEveryMs: number;
  logger: Logger;
}

export const RECEIVER_DEFAULTS = {
  host: '0.0.0.0',
  port: DEFAULT_PORT,
  dir: './relay-inbox',
  maxFileSize: 100 * 1024 ** 3,
  minFree: 1024 ** 3,
  partialTtlMs: 24 * 3_600_000,
  pingIntervalMs: 10_000,
  pingTimeoutMs: 10_000,
  summaryEveryMs: 60_000,
  maxTransfersPerConnection: 64,
  maxBufferedBytesPerConnection: 4 * 1024 * 1024,
  transferIdleMs: 5 * 60_000,
  lockTimeoutMs: 30_000,
} as const;

export function resolveReceiverOptions(given: Partial<ReceiverOptions> & { token: string }): ReceiverOptions {
  const merged = {
    ...RECEIVER_DEFAULTS,
    node: os.hostname(),
    ...definedOnly(given),
  } as Omit<ReceiverOptions, 'logger'> & { logger?: Logger };
  return {
    ...merged,
    dir: path.resolve(merged.dir),
    logger: merged.logger ?? createLogger({ name: 'relay-receiver' }),
  };
}
