/** The receiver's command-line options for admission (caps, deadlines, failed logins), and their parsing. */
import { Option } from 'commander';
import { arg, parseDuration, parsePositiveInt } from '@relayer/common';
import { ADMISSION_DEFAULTS, type AdmissionOptions } from '../session/admission.js';

/** A default as people write it (and docs/cli.md shows it): 5m, not 300s. */
const secs = (ms: number): string => (ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`);

export function admissionCliOptions(): Option[] {
  const d = ADMISSION_DEFAULTS;
  return [
    new Option('--max-connections <n>', 'open connections at once, all addresses').env('RELAY_MAX_CONNECTIONS').argParser(arg(parsePositiveInt)).default(d.maxConnections),
    new Option('--max-connections-per-address <n>', 'open connections at once from one address').env('RELAY_MAX_CONNECTIONS_PER_ADDRESS').argParser(arg(parsePositiveInt)).default(d.maxConnectionsPerAddress),
    new Option('--handshake-timeout <duration>', 'time a new connection has to become a logged-in websocket').env('RELAY_HANDSHAKE_TIMEOUT').argParser(arg(parseDuration)).default(d.handshakeTimeoutMs, secs(d.handshakeTimeoutMs)),
    new Option('--auth-max-failures <n>', 'failed logins from one address before it is blocked').env('RELAY_AUTH_MAX_FAILURES').argParser(arg(parsePositiveInt)).default(d.authFailuresBeforeBlock),
    new Option('--auth-block <duration>', 'how long a blocked address is refused').env('RELAY_AUTH_BLOCK').argParser(arg(parseDuration)).default(d.authBlockMs, secs(d.authBlockMs)),
  ];
}

export interface AdmissionFlags {
  maxConnections: number;
  maxConnectionsPerAddress: number;
  handshakeTimeout: number;
  authMaxFailures: number;
  authBlock: number;
}

export function admissionFromCli(o: AdmissionFlags): Partial<AdmissionOptions> {
  return {
    maxConnections: o.maxConnections,
    maxConnectionsPerAddress: o.maxConnectionsPerAddress,
    handshakeTimeoutMs: o.handshakeTimeout,
    authFailuresBeforeBlock: o.authMaxFailures,
    authBlockMs: o.authBlock,
  };
}
