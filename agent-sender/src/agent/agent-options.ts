/** The sender agent's options and their defaults, merged in one place. Only the CLI reads argv and env. */
import { promises as dns } from 'node:dns';
import path from 'node:path';
import { defaultHashThreads } from '@relayer/common/file-hasher';
import { createError, createLogger, definedOnly, ErrorCode, isReceiverUrl, quoted, type Logger } from '@relayer/common';
import { defaultSocketPath } from '../control/control-protocol.js';

export interface ReceiverEntry {
  name: string;
  url: string;
}

/** A DNS name whose every address is a receiver on `port` (e.g. tasks.receiver:7420 in a Swarm). */
export interface DiscoverEntry {
  host: string;
  port: number;
}

/** Every address behind a name; a name with none may resolve to [] or reject with ENOTFOUND. */
export type Resolver = (host: string) => Promise<string[]>;

/** The system resolver (getaddrinfo: /etc/hosts, then DNS, e.g. Docker's embedded server for tasks.*). */
export const systemResolver: Resolver = async (host) => (await dns.lookup(host, { all: true, verbatim: true })).map((a) => a.address);

export interface HttpListen {
  host: string;
  port: number;
}

export interface SenderAgentOptions {
  /** The local control socket. Default a private folder (see socket-trust.ts; the CLI also reads RELAY_SOCKET). */
  socketPath: string;
  /** Group (name or gid) that may use the socket: folder 0750 and socket 0660 in that group. Default none. */
  socketGroup?: string;
  /** Receivers to keep connections to. */
  receivers: ReceiverEntry[];
  /** Names to discover receivers behind (every address is one receiver, named by the node it reports). Default none. */
  discover: DiscoverEntry[];
  /** How often discovered names are resolved again, so nodes that join or leave are followed. Default 10s (100ms … 1h). */
  discoverEveryMs: number;
  /**
   * How long a discovered receiver whose address left DNS is kept (disconnected, still in `--to all`, its
   * transfers waiting) for the same node name to answer again at any address. Default 60s (0 … 1h; 0 closes it at once).
   */
  discoverGraceMs: number;
  /** How long to wait for a new address's /healthz (which names it). Default 3s. */
  discoverProbeTimeoutMs: number;
  /** Resolves a discovered name. Default the system resolver; tests pass their own. */
  resolver: Resolver;
  /** An http listener for /healthz and /metrics. Default none. */
  http?: HttpListen;
  /** The only folders whose files may be sent (after resolving symlinks). Default none: every send refused. */
  allowRoots: string[];
  /** Heartbeat interval. Default 5s. A receiver is stale after 3 unanswered beats. */
  heartbeatMs: number;
  /** Transfers of files over 1 MiB at once, over all jobs (smaller files: see job.ts). Default 4. */
  concurrency: number;
  /**
   * Threads hashing the files being sent (over 1 MiB; smaller ones are hashed on the main thread), reading
   * them back from the page cache. 0: all on the main thread. Default: 1 with two or more cores, else 0.
   */
  hashThreads: number;
  /** Interval of the one-line status summary at info. Default 60s; 0 disables it. */
  summaryEveryMs: number;
  token: string;
  /** PEM CA certificate(s) trusted for https:// receivers (--ca). Default: the system's CAs only. */
  ca?: string | Buffer;
  logger: Logger;
}

export const SENDER_AGENT_DEFAULTS = {
  heartbeatMs: 5000,
  concurrency: 4,
  hashThreads: defaultHashThreads(),
  summaryEveryMs: 60_000,
  allowRoots: [] as string[],
  receivers: [] as ReceiverEntry[],
  discover: [] as DiscoverEntry[],
  discoverEveryMs: 10_000,
  discoverGraceMs: 60_000,
  discoverProbeTimeoutMs: 3000,
  resolver: systemResolver,
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
    if (!/^[A-Za-z0-9_.-]+$/.test(r.name) || r.name === 'all') throw createError(ErrorCode.USAGE, `bad receiver name ${quoted(r.name)}: use letters, digits, . _ - (and not "all")`);
    if (names.has(r.name)) throw createError(ErrorCode.USAGE, `receiver ${r.name} is given twice`);
    names.add(r.name);
    if (!isReceiverUrl(r.url)) throw createError(ErrorCode.USAGE, `receiver ${r.name}: not a URL: ${r.url}`);
  }
  if (!(o.concurrency >= 1)) throw createError(ErrorCode.USAGE, 'concurrency must be at least 1');
  if (!(o.heartbeatMs >= 50)) throw createError(ErrorCode.USAGE, 'heartbeat must be at least 50ms');
  if (!(o.discoverEveryMs >= 100 && o.discoverEveryMs <= 3_600_000)) throw createError(ErrorCode.USAGE, 'discover interval must be between 100ms and 1h');
  if (!(o.discoverGraceMs >= 0 && o.discoverGraceMs <= 3_600_000)) throw createError(ErrorCode.USAGE, 'discover grace must be between 0 and 1h');
  if (!(o.discoverProbeTimeoutMs >= 10 && o.discoverProbeTimeoutMs <= 60_000)) throw createError(ErrorCode.USAGE, 'discover probe timeout must be between 10ms and 60s');
  for (const d of o.discover) {
    if (!/^[A-Za-z0-9_.-]+$/.test(d.host) || !Number.isInteger(d.port) || d.port < 1 || d.port > 65535) {
      throw createError(ErrorCode.USAGE, `bad discover entry ${quoted(`${d.host}:${d.port}`)}: want <dns name>:<port>`);
    }
  }
  if (o.http && !(Number.isInteger(o.http.port) && o.http.port >= 0 && o.http.port <= 65535)) throw createError(ErrorCode.USAGE, `http: not a port: ${o.http.port}`);
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
    if (eq <= 0) throw createError(ErrorCode.USAGE, `--receiver wants name=url, got ${quoted(s)}`);
    return { name: s.slice(0, eq), url: s.slice(eq + 1) };
  });
}

/** "tasks.receiver:7420,other:7420" or repeated entries. */
export function parseDiscover(specs: string[]): DiscoverEntry[] {
  return specs.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean).map((s) => {
    const m = /^([^:\s]+):(\d{1,5})$/.exec(s);
    if (!m) throw createError(ErrorCode.USAGE, `--discover wants <dns name>:<port>, got ${quoted(s)}`);
    return { host: m[1]!, port: Number(m[2]) };
  });
}

/** "127.0.0.1:7421", "[::1]:7421" or ":7421" (every address). */
export function parseListen(spec: string): HttpListen {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]*)):(\d{1,5})$/.exec(spec.trim());
  if (!m) throw createError(ErrorCode.USAGE, `--http wants <host>:<port>, got ${quoted(spec)}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port: Number(m[3]) };
}
