/** The sender agent's options and their defaults, merged in one place. Only the CLI reads argv and env. */
import path from 'node:path';
import { createError, createLogger, definedOnly, ErrorCode, isReceiverUrl, type Logger } from '@relayer/common';
import { defaultSocketPath } from './control-protocol.js';

export interface ReceiverEntry {
  name: string;
  url: string;
}

export interface SenderAgentOptions {
  /** The local control socket. Default relay-sender.sock in the OS temp folder (the CLI also reads RELAY_SOCKET). */
  socketPath: string;
  /** Receivers to keep connections to. */
  receivers: ReceiverEntry[];
  /** The only folders whose files may be sent (after resolving symlinks). Default none: every send refused. */
  allowRoots: string[];
  /** Heartbeat interval. Default 5s. A receiver is stale after 3 unanswered beats. */
  heartbeatMs: number;
  /** Transfers of files over 1 MiB at once, over all jobs (smaller files: see job.ts). Default 4. */
  concurrency: number;
  /** Interval of the one-line status summary at info. Default 60s; 0 disables it. */
  summaryEveryMs: number;
  token: string;
  logger: Logger;
}

export const SENDER_AGENT_DEFAULTS = {
  heartbeatMs: 5000,
  concurrency: 4,
  summaryEveryMs: 60_000,
  allowRoots: [] as string[],
  receivers: [] as ReceiverEntry[],
} as const;

export function resolveSenderAgentOptions(given: Partial<SenderAgentOptions> & { token: string }): SenderAgentOptions {
  const defined = definedOnly(given) as Partial<SenderAgentOptions>;
  const o = {
    ...SENDER_AGENT_DEFAULTS,
    socketPath: defaultSocketPath(),
    ...defined,
  } as SenderAgentOptions;
  const names = new Set<string>();
  for (const r of o.receivers) {
    if (!/^[A-Za-z0-9_.-]+$/.test(r.name) || r.name === 'all') throw createError(ErrorCode.USAGE, `bad receiver name ${JSON.stringify(r.name)}: use letters, digits, . _ - (and not "all")`);
    if (names.has(r.name)) throw createError(ErrorCode.USAGE, `receiver ${r.name} is given twice`);
    names.add(r.name);
    if (!isReceiverUrl(r.url)) throw createError(ErrorCode.USAGE, `receiver ${r.name}: not a URL: ${r.url}`);
  }
  if (!(o.concurrency >= 1)) throw createError(ErrorCode.USAGE, 'concurrency must be at least 1');
  if (!(o.heartbeatMs >= 50)) throw createError(ErrorCode.USAGE, 'heartbeat must be at least 50ms');
  return {
    ...o,
    socketPath: path.resolve(o.socketPath),
    allowRoots: o.allowRoots.map((r) => path.resolve(r)),
    logger: o.logger ?? createLogger({ name: 'relay-sender' }),
  };
}

/** "a=http://x:7420,b=http://y:7420" or repeated "a=http://x:7420" entries. */
export function parseReceivers(specs: string[]): ReceiverEntry[] {
  return specs.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean).map((s) => {
    const eq = s.indexOf('=');
    if (eq <= 0) throw createError(ErrorCode.USAGE, `--receiver wants name=url, got ${JSON.stringify(s)}`);
    return { name: s.slice(0, eq), url: s.slice(eq + 1) };
  });
}
