/** `relay-sender`: turns argv and env into SenderAgentOptions and runs the agent until SIGINT/SIGTERM. */
import { Command, CommanderError, Option } from 'commander';
import { arg, createLogger, elideQuoted, list, loadToken, parseDuration, parsePositiveInt, parseThreads, runUntilSignal, VERSION } from '@relayer/common';
import { SenderAgent } from '../agent/agent.js';
import {
  parseDiscover, parseListen, parseReceivers, SENDER_AGENT_DEFAULTS,
  type DiscoverEntry, type HttpListen, type ReceiverEntry,
} from '../agent/agent-options.js';
import { defaultSocketPath } from '../control/control-protocol.js';
import { readCaFile } from '../link/tls-client.js';

const d = SENDER_AGENT_DEFAULTS;
const secs = (ms: number): string => `${ms / 1000}s`;
const one = <T>(parse: (specs: string[]) => T[]) => (text: string): T => parse([text])[0]!;

const program = new Command('relay-sender')
  .description('Relayer sender agent: keeps heartbeating connections to receivers and runs `relay send` jobs.')
  .version(VERSION)
  .addOption(new Option('--socket <path>', 'local control socket').env('RELAY_SOCKET').default(defaultSocketPath(process.env)))
  .addOption(new Option('--socket-group <group>', 'group allowed to use the socket (folder 0750, socket 0660)').env('RELAY_SOCKET_GROUP'))
  .addOption(new Option('--receiver <name=url>', 'a receiver to keep connected (repeatable; env: comma-separated)').env('RELAY_RECEIVERS')
    .argParser(list(one(parseReceivers))))
  .addOption(new Option('--discover <name:port>', 'a DNS name whose every address is a receiver, e.g. tasks.receiver:7420 (repeatable; env: comma-separated)')
    .env('RELAY_DISCOVER').argParser(list(one(parseDiscover))))
  .addOption(new Option('--discover-every <duration>', 'how often discovered names are resolved again').env('RELAY_DISCOVER_EVERY')
    .argParser(arg(parseDuration)).default(d.discoverEveryMs, secs(d.discoverEveryMs)))
  .addOption(new Option('--discover-grace <duration>', 'how long a discovered receiver whose address left DNS is kept (disconnected, in --to all) for it to come back (0 … 1h)')
    .env('RELAY_DISCOVER_GRACE').argParser(arg(parseDuration)).default(d.discoverGraceMs, secs(d.discoverGraceMs)))
  .addOption(new Option('--http <host:port>', 'serve /healthz and /metrics here, e.g. 127.0.0.1:7421 (default: off)').env('RELAY_HTTP').argParser(arg(parseListen)))
  .addOption(new Option('--allow-root <dir>', 'a folder whose files may be sent (repeatable; env: colon-separated)').env('RELAY_ALLOW_ROOTS')
    .argParser(list((s) => s, ':')).default([], 'none: every send is refused'))
  .addOption(new Option('--heartbeat <duration>', 'heartbeat interval').env('RELAY_HEARTBEAT').argParser(arg(parseDuration)).default(d.heartbeatMs, secs(d.heartbeatMs)))
  .addOption(new Option('--concurrency <n>', 'transfers at once').env('RELAY_CONCURRENCY').argParser(arg(parsePositiveInt)).default(d.concurrency))
  .addOption(new Option('--hash-threads <n>', 'worker threads computing the sha256 of files sent (0 = on the main thread)').env('RELAY_HASH_THREADS').argParser(arg(parseThreads)).default(d.hashThreads, '1 with two or more cores, else 0'))
  .addOption(new Option('--summary-every <duration>', 'status summary log interval (0 = off)').env('RELAY_SUMMARY_EVERY')
    .argParser(arg(parseDuration)).default(d.summaryEveryMs, secs(d.summaryEveryMs)))
  .addOption(new Option('--ca <file>', 'PEM CA certificate to trust for https:// receivers').env('RELAY_CA'))
  .addOption(new Option('--token-file <path>', 'file holding the shared token').env('RELAY_TOKEN_FILE'))
  .addOption(new Option('--token <token>', 'the shared token (prefer --token-file: argv and env are visible to other processes)').env('RELAY_TOKEN').hideHelp())
  .addOption(new Option('--log-level <level>', 'trace, debug, info, warn, error').env('RELAY_LOG_LEVEL').default('info'))
  .exitOverride()
  // commander echoes the argument it refuses: bounded like every echoed value.
  .configureOutput({ outputError: (str, write) => write(elideQuoted(str)) })
  .showHelpAfterError("see 'relay-sender --help'")
  .addHelpText('after', `
Examples:
  relay-sender --receiver pi1=http://pi1:7420 --receiver pi2=http://pi2:7420 --allow-root /var/jenkins_home/workspace
  relay-sender --discover tasks.relay-receiver:7420 --allow-root /workspace --token-file /run/secrets/relay_token`);

interface AgentFlags {
  socket: string;
  socketGroup?: string;
  receiver?: ReceiverEntry[];
  discover?: DiscoverEntry[];
  discoverEvery: number;
  discoverGrace: number;
  http?: HttpListen;
  allowRoot: string[];
  heartbeat: number;
  concurrency: number;
  hashThreads: number;
  summaryEvery: number;
  ca?: string;
  tokenFile?: string;
  token?: string;
  logLevel: string;
}

let opts: AgentFlags;
try {
  opts = program.parse().opts<AgentFlags>();
} catch (err) {
  process.exit(err instanceof CommanderError && err.exitCode === 0 ? 0 : 2);
}

let agent: SenderAgent;
try {
  agent = new SenderAgent({
    socketPath: opts.socket,
    socketGroup: opts.socketGroup,
    receivers: opts.receiver ?? [],
    discover: opts.discover ?? [],
    discoverEveryMs: opts.discoverEvery,
    discoverGraceMs: opts.discoverGrace,
    http: opts.http,
    allowRoots: opts.allowRoot,
    heartbeatMs: opts.heartbeat,
    concurrency: opts.concurrency,
    hashThreads: opts.hashThreads,
    summaryEveryMs: opts.summaryEvery,
    token: loadToken(opts.tokenFile, opts.token),
    ca: readCaFile(opts.ca),
    logger: createLogger({ name: 'relay-sender', level: opts.logLevel }),
  });
} catch (err) {
  process.stderr.write(`relay-sender: ${(err as Error).message}\n`);
  process.exit(2);
}

await runUntilSignal('relay-sender', agent, agent.options.logger);
