/** `relay-receiver`: turns argv and env into ReceiverOptions, runs the receiver until SIGINT/SIGTERM. */
import { Command, CommanderError, Option } from 'commander';
import { arg, createLogger, elideQuoted, loadTokens, parseDuration, parsePort, parsePositiveInt, parseSize, parseThreads, runUntilSignal, VERSION } from '@relayer/common';
import { Receiver } from '../receiver.js';
import { RECEIVER_DEFAULTS } from '../options.js';
import { defaultHashThreads } from '@relayer/common/file-hasher';
import { admissionCliOptions, admissionFromCli, type AdmissionFlags } from './admission-cli.js';
import { readTlsServerFiles } from '../session/tls-server.js';

const program = new Command('relay-receiver')
  .description('Relayer receiver agent: accepts verified, resumable file transfers from relay senders.')
  .version(VERSION)
  .addOption(new Option('--host <addr>', 'address to listen on').env('RELAY_HOST').default(RECEIVER_DEFAULTS.host).helpGroup('Network:'))
  .addOption(new Option('--port <n>', 'port to listen on').env('RELAY_PORT').argParser(arg(parsePort)).default(RECEIVER_DEFAULTS.port).helpGroup('Network:'))
  .addOption(new Option('--dir <path>', 'folder files are published into').env('RELAY_DIR').default(RECEIVER_DEFAULTS.dir).helpGroup('Storage:'))
  .addOption(new Option('--token-file <path>', 'file holding the shared token(s), one per line, all accepted (or the token itself in RELAY_TOKEN)').env('RELAY_TOKEN_FILE').helpGroup('Security:'))
  .addOption(new Option('--max-file-size <size>', 'largest file accepted').env('RELAY_MAX_FILE_SIZE').argParser(arg(parseSize)).default(RECEIVER_DEFAULTS.maxFileSize, '100G').helpGroup('Storage:'))
  .addOption(new Option('--min-free <size>', 'refuse offers that would leave less free disk').env('RELAY_MIN_FREE').argParser(arg(parseSize)).default(RECEIVER_DEFAULTS.minFree, '1G').helpGroup('Storage:'))
  .addOption(new Option('--partial-ttl <duration>', 'remove partial transfers untouched this long').env('RELAY_PARTIAL_TTL').argParser(arg(parseDuration)).default(RECEIVER_DEFAULTS.partialTtlMs, '24h').helpGroup('Storage:'))
  .addOption(new Option('--display-dir <path>', 'the --dir folder as the node\'s host sees it, shown in confirmations (e.g. /srv/relay-inbox)').env('RELAY_DISPLAY_DIR').helpGroup('Storage:'))
  .addOption(new Option('--action-dir <path>', 'folder of node actions: each executable file in it is an action a sender may name with --then (never inside --dir)').env('RELAY_ACTION_DIR').helpGroup('Actions:'))
  .addOption(new Option('--node <name>', 'node name in heartbeats and /healthz (default: host name)').env('RELAY_NODE').helpGroup('Logs and identity:'))
  .addOption(new Option('--summary-every <duration>', 'status summary log interval (0 = off)').env('RELAY_SUMMARY_EVERY').argParser(arg(parseDuration)).default(RECEIVER_DEFAULTS.summaryEveryMs, '60s').helpGroup('Logs and identity:'))
  .addOption(new Option('--log-level <level>', 'trace, debug, info, warn, error').env('RELAY_LOG_LEVEL').default('info').helpGroup('Logs and identity:'))
  .addOption(new Option('--max-transfers-per-connection <n>', 'open transfers one sender connection may hold').env('RELAY_MAX_TRANSFERS_PER_CONNECTION').argParser(arg(parsePositiveInt)).default(RECEIVER_DEFAULTS.maxTransfersPerConnection).helpGroup('Limits and tuning:'))
  .addOption(new Option('--max-buffered <size>', 'chunk bytes one connection may make the receiver hold before reading from it stops').env('RELAY_MAX_BUFFERED').argParser(arg(parseSize)).default(RECEIVER_DEFAULTS.maxBufferedBytesPerConnection, '4M').helpGroup('Limits and tuning:'))
  .addOption(new Option('--hash-threads <n>', 'worker threads computing sha256 digests (0 = on the main thread)').env('RELAY_HASH_THREADS').argParser(arg(parseThreads)).default(defaultHashThreads(), '1 with two or more cores, else 0').helpGroup('Limits and tuning:'))
  .addOption(new Option('--flush-every <size>', 'flush a partial to the disk in the background after this many bytes (0 = only at the commit)').env('RELAY_FLUSH_EVERY').argParser(arg(parseSize)).default(RECEIVER_DEFAULTS.flushEvery, '64M').helpGroup('Storage:'))
  .addOption(new Option('--transfer-idle <duration>', 'release a held transfer after this long without a request (partial kept)').env('RELAY_TRANSFER_IDLE').argParser(arg(parseDuration)).default(RECEIVER_DEFAULTS.transferIdleMs, '5m').helpGroup('Limits and tuning:'))
  .addOption(new Option('--token <token>', 'the shared token (prefer --token-file: argv and env are visible to other processes)').env('RELAY_TOKEN').hideHelp())
  .addOption(new Option('--tls-cert <file>', 'serve https/wss with this PEM certificate (chain)').env('RELAY_TLS_CERT').helpGroup('Network:'))
  .addOption(new Option('--tls-key <file>', 'the PEM private key of --tls-cert').env('RELAY_TLS_KEY').helpGroup('Network:'))
  .exitOverride()
  // commander echoes the argument it refuses: bounded like every echoed value.
  .configureOutput({ outputError: (str, write) => write(elideQuoted(str)) })
  .showHelpAfterError("see 'relay-receiver --help'");
for (const o of admissionCliOptions()) program.addOption(o.helpGroup('Security: who may connect, and how often:'));
program.addHelpText('after', `
Examples:
  relay-receiver --dir /srv/relay-inbox --token-file /run/secrets/relay_token
  relay-receiver --port 7420 --tls-cert node.crt --tls-key node.key --min-free 2G
  relay-receiver --dir /srv/relay --action-dir /etc/relay/actions   senders may run /etc/relay/actions/* by name (--then)
Every option may also be set by its environment variable (RELAY_DIR, RELAY_PORT, ...).`);

interface ReceiverFlags extends AdmissionFlags {
  tlsCert?: string;
  tlsKey?: string;
  host: string;
  port: number;
  dir: string;
  tokenFile?: string;
  token?: string;
  maxFileSize: number;
  minFree: number;
  partialTtl: number;
  node?: string;
  displayDir?: string;
  summaryEvery: number;
  logLevel: string;
  maxTransfersPerConnection: number;
  maxBuffered: number;
  transferIdle: number;
  hashThreads: number;
  flushEvery: number;
  actionDir?: string;
}

async function main(): Promise<void> {
  let opts: ReceiverFlags;
  try {
    opts = program.parse().opts<ReceiverFlags>();
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
    throw err;
  }
  let receiver: Receiver;
  try {
    receiver = new Receiver({
      host: opts.host,
      port: opts.port,
      dir: opts.dir,
      // An empty RELAY_ACTION_DIR (a stack's unset variable) means none, not the working directory.
      actionDir: opts.actionDir === '' ? undefined : opts.actionDir,
      token: loadTokens(opts.tokenFile, opts.token),
      tls: readTlsServerFiles(opts.tlsCert, opts.tlsKey),
      admission: admissionFromCli(opts),
      maxFileSize: opts.maxFileSize,
      minFree: opts.minFree,
      partialTtlMs: opts.partialTtl,
      node: opts.node,
      displayDir: opts.displayDir,
      summaryEveryMs: opts.summaryEvery,
      maxTransfersPerConnection: opts.maxTransfersPerConnection,
      maxBufferedBytesPerConnection: opts.maxBuffered,
      transferIdleMs: opts.transferIdle,
      hashThreads: opts.hashThreads,
      flushEvery: opts.flushEvery,
      logger: createLogger({ name: 'relay-receiver', level: opts.logLevel }),
    });
  } catch (err) {
    process.stderr.write(`relay-receiver: ${(err as Error).message}\n`);
    process.exit(2);
  }
  await runUntilSignal('relay-receiver', receiver, receiver.options.logger);
}

void main();
