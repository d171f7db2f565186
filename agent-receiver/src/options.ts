/** The receiver's options and their defaults, merged in one place. Only the CLI reads argv and env. */
import os from 'node:os';
import path from 'node:path';
import { createError, createLogger, DEFAULT_PORT, definedOnly, ErrorCode, quoted, type Logger } from '@relayer/common';
import { ADMISSION_DEFAULTS, type AdmissionOptions } from './session/admission.js';
import { defaultHashThreads } from '@relayer/common/file-hasher';
import type { TlsServerOptions } from './session/tls-server.js';

export interface ReceiverOptions {
  /** Address to listen on. Default 0.0.0.0. */
  host: string;
  /** Port; 0 picks a free one (tests). Default 7420. */
  port: number;
  /** Folder files are published into. Default ./relay-inbox. */
  dir: string;
  /** Shared secret senders must present; several are all accepted (rotation). Required. */
  token: string | readonly string[];
  /** Serve https/wss with this certificate and key. Default none: plain http/ws. */
  tls?: TlsServerOptions;
  /** Connection caps, handshake deadline, failed-login backoff and block (see admission.ts). */
  admission: AdmissionOptions;
  /** Largest file accepted. Default 100 GiB. */
  maxFileSize: number;
  /** Refuse an offer that would leave less free space than this. Default 1 GiB. */
  minFree: number;
  /** Partials untouched this long are removed. Default 24h. */
  partialTtlMs: number;
  /** Name reported in heartbeats, /healthz and every confirmation. Default the host name. */
  node: string;
  /**
   * The folder `dir` is on the node's host, for display only: confirmations then show the host path
   * (e.g. /srv/relay-inbox/app.bin) instead of the container's (/data/app.bin). Default none: show `dir`.
   */
  displayDir?: string;
  /** Socket.IO ping interval / timeout: how fast a dead sender is noticed. Default 10s / 10s. */
  pingIntervalMs: number;
  pingTimeoutMs: number;
  /** Transfers one connection may hold open at once; more offers get LIMIT. Default 64. */
  maxTransfersPerConnection: number;
  /** Chunk bytes one connection may make the receiver hold; beyond it, reading from it stops. Default 4 MiB
   * (enough to keep the disk busy; the rest of a sender's window waits in TCP buffers, outside the process.
   * A larger budget costs RSS twice: held chunks outlive two scavenges, then their garbage waits for a major GC). */
  maxBufferedBytesPerConnection: number;
  /**
   * Worker threads that compute the partials' sha256, beside the main thread's crc32 checks and writes; 0
   * hashes on the main thread (less memory: each thread costs ~10 MB of RSS). Default: 1 when there is a
   * second core, else 0 (a Raspberry Pi, whose sha256 is slow, keeps its main thread free for the socket).
   */
  hashThreads: number;
  /**
   * Bytes of a partial written between background flushes to the disk (datasync), so the commit's fsync
   * has little left to write and the sender's wait for the confirmation stays short. Default 64 MiB; 0
   * leaves everything to the commit's fsync.
   */
  flushEvery: number;
  /** A held transfer with no request for this long is released (partial kept, space freed). Default 5 min. */
  transferIdleMs: number;
  /** Longest wait for another offer or commit of the same name. Default 30s. */
  lockTimeoutMs: number;
  /**
   * Folder of node actions: each executable file in it is an action a sender may name (`relay send --then
   * NAME`); no command text from a sender is ever run. Default none: no actions.
   */
  actionDir?: string;
  /** Interval of the one-line status summary at info. Default 60s; 0 disables it. */
  summaryEveryMs: number;
  logger: Logger;
}

/**
 * The Node flags relay-receiver starts itself with (its bin's first lines are sh, which execs Node with
 * them on the same file: Node refuses them in NODE_OPTIONS). The bin spells them for sh; this is the same
 * list for whoever starts the receiver as `node <flags> <bin>` (tests, bench, demo), and
 * test/src/unit/node-options.test.ts checks that a running bin has exactly these.
 */
export const RECEIVER_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=56'];

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
  flushEvery: 64 * 1024 * 1024,
  transferIdleMs: 5 * 60_000,
  lockTimeoutMs: 30_000,
} as const;

export function resolveReceiverOptions(given: Omit<Partial<ReceiverOptions>, 'admission'> & { token: string | readonly string[]; admission?: Partial<AdmissionOptions> }): ReceiverOptions {
  const merged = {
    ...RECEIVER_DEFAULTS,
    node: os.hostname(),
    hashThreads: defaultHashThreads(),
    ...definedOnly(given),
  } as Omit<ReceiverOptions, 'logger'> & { logger?: Logger };
  if (merged.displayDir !== undefined && !path.posix.isAbsolute(merged.displayDir)) {
    throw createError(ErrorCode.USAGE, `display dir must be an absolute path, got ${quoted(merged.displayDir)}`);
  }
  const dir = path.resolve(merged.dir);
  if (merged.actionDir !== undefined) {
    const a = path.resolve(merged.actionDir);
    // Senders write below dir: an action folder there would let a token holder define what runs.
    if (a === dir || a.startsWith(dir + path.sep) || dir.startsWith(a + path.sep)) {
      throw createError(ErrorCode.USAGE, `action dir ${quoted(a)} must be outside the receive dir ${quoted(dir)} (senders write there)`);
    }
  }
  return {
    ...merged,
    dir,
    ...(merged.actionDir !== undefined ? { actionDir: path.resolve(merged.actionDir) } : {}),
    admission: { ...ADMISSION_DEFAULTS, ...definedOnly(given.admission ?? {}) },
    logger: merged.logger ?? createLogger({ name: 'relay-receiver' }),
  };
}
