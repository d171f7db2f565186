/** The receiver's command-line options for admission (caps, deadlines, failed logins), and their parsing. */
import { Option } from 'commander';
import { createError, ErrorCode, parseDuration } from '@relayer/common';
import { ADMISSION_DEFAULTS, type AdmissionOptions } from './admission.js';

const secs = (ms: number): string => `${ms / 1000}s`;

export function admissionCliOptions(): Option[] {
  const d = ADMISSION_DEFAULTS;
  return [
    new Option('--max-connections <n>', 'open connections at once, all addresses').env('RELAY_MAX_CONNECTIONS').default(String(d.maxConnections)),
    new Option('--max-connections-per-address <n>', 'open connections at once from one address').env('RELAY_MAX_CONNECTIONS_PER_ADDRESS').default(String(d.maxConnectionsPerAddress)),
    new Option('--handshake-timeout <duration>', 'time a new connection has to become a logged-in websocket').env('RELAY_HANDSHAKE_TIMEOUT').default(secs(d.handshakeTimeoutMs)),
    new Option('--auth-max-failures <n>', 'failed logins from one address before it is blocked').env('RELAY_AUTH_MAX_FAILURES').default(String(d.authFailuresBeforeBlock)),
    new Option('--auth-block <duration>', 'how long a blocked address is refused').env('RELAY_AUTH_BLOCK').default(secs(d.authBlockMs)),
  ];
}

function count(flag: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw createError(ErrorCode.USAGE, `${flag}: not a positive integer: ${v}`);
  return n;
}

export interface AdmissionFlags {
  maxConnections?: string;
  maxConnectionsPerAddress?: string;
  handshakeTimeout?: string;
  authMaxFailures?: string;
  authBlock?: string;
}

export function admissionFromCli(o: AdmissionFlags): Partial<AdmissionOptions> {
  return {
    maxConnections: count('--max-connections', o.maxConnections),
    maxConnectionsPerAddress: count('--max-connections-per-address', o.maxConnectionsPerAddress),
    handshakeTimeoutMs: parseDuration(o.handshakeTimeout!),
    authFailuresBeforeBlock: count('--auth-max-failures', o.authMaxFailures),
    authBlockMs: parseDuration(o.authBlock!),
  };
}
