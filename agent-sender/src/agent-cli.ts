/** `relay-sender`: turns argv and env into SenderAgentOptions and runs the agent until SIGINT/SIGTERM. */
import { Command, CommanderError, Option } from 'commander';
import { createLogger, loadToken, parseDuration, RelayError, runUntilSignal, VERSION } from '@relayer/common';
import { SenderAgent } from './agent.js';
import { parseDiscover, parseListen, parseReceivers, SENDER_AGENT_DEFAULTS } from './agent-options.js';
import { defaultSocketPath } from './control-protocol.js';
import { readCaFile } from './tls-client.js';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

const program = new Command('relay-sender')
  .description('Relayer sender agent: keeps heartbeating connections to receivers and runs `relay send` jobs.')
  .version(VERSION)
  .addOption(new Option('--socket <path>', 'local control socket').env('RELAY_SOCKET').default(defaultSocketPath()))
  .addOption(new Option('--socket-group <group>', 'group allowed to use the socket (folder 0750, socket 0660)').env('RELAY_SOCKET_GROUP'))
  .addOption(new Option('--receiver <name=url>', 'a receiver to keep connected (repeatable; env RELAY_RECEIVERS="a=url,b=url")').argParser(collect))
  .addOption(new Option('--discover <name:port>', 'a DNS name whose every address is a receiver, e.g. tasks.receiver:7420 (repeatable; env RELAY_DISCOVER="a:7420,b:7420")').argParser(collect))
  .addOption(new Option('--discover-every <duration>', 'how often discovered names are resolved again').env('RELAY_DISCOVER_EVERY').default(`${SENDER_AGENT_DEFAULTS.discoverEveryMs / 1000}s`))
  .addOption(new Option('--http <host:port>', 'serve /healthz and /metrics here, e.g. 127.0.0.1:7421 (default: off)').env('RELAY_HTTP'))
  .addOption(new Option('--allow-root <dir>', 'a folder whose files may be sent (repeatable; env RELAY_ALLOW_ROOTS="/a:/b")').argParser(collect))
  .addOption(new Option('--heartbeat <duration>', 'heartbeat interval').env('RELAY_HEARTBEAT').default(`${SENDER_AGENT_DEFAULTS.heartbeatMs / 1000}s`))
  .addOption(new Option('--concurrency <n>', 'transfers at once').env('RELAY_CONCURRENCY').default(String(SENDER_AGENT_DEFAULTS.concurrency)))
  .addOption(new Option('--summary-every <duration>', 'status summary log interval (0 = off)').env('RELAY_SUMMARY_EVERY').default('60s'))
  .addOption(new Option('--ca <file>', 'PEM CA certificate to trust for https:// receivers').env('RELAY_CA'))
  .addOption(new Option('--token-file <path>', 'file holding the shared token (else env RELAY_TOKEN)').env('RELAY_TOKEN_FILE'))
  .addOption(new Option('--log-level <level>', 'trace, debug, info, warn, error').env('RELAY_LOG_LEVEL').default('info'))
  .exitOverride();

let opts: Record<string, string | string[] | undefined>;
try {
  opts = program.parse().opts();
} catch (err) {
  process.exit(err instanceof CommanderError && err.exitCode === 0 ? 0 : 2);
}

let agent: SenderAgent;
try {
  const receivers = parseReceivers((opts.receiver as string[] | undefined) ?? (process.env.RELAY_RECEIVERS ? [process.env.RELAY_RECEIVERS] : []));
  const discover = parseDiscover((opts.discover as string[] | undefined) ?? (process.env.RELAY_DISCOVER ? [process.env.RELAY_DISCOVER] : []));
  const allowRoots = (opts.allowRoot as string[] | undefined) ?? (process.env.RELAY_ALLOW_ROOTS?.split(':').filter(Boolean) ?? []);
  const concurrency = Number(opts.concurrency);
  if (!Number.isInteger(concurrency)) throw new RelayError('USAGE', `--concurrency: not an integer: ${String(opts.concurrency)}`);
  agent = new SenderAgent({
    socketPath: opts.socket as string,
    socketGroup: opts.socketGroup as string | undefined,
    receivers,
    discover,
    discoverEveryMs: parseDuration(opts.discoverEvery as string),
    http: opts.http ? parseListen(opts.http as string) : undefined,
    allowRoots,
    heartbeatMs: parseDuration(opts.heartbeat as string),
    concurrency,
    summaryEveryMs: parseDuration(opts.summaryEvery as string),
    token: loadToken(opts.tokenFile as string | undefined, process.env.RELAY_TOKEN),
    ca: readCaFile(opts.ca as string | undefined),
    logger: createLogger({ name: 'relay-sender', level: opts.logLevel as string }),
  });
} catch (err) {
  process.stderr.write(`relay-sender: ${(err as Error).message}\n`);
  process.exit(2);
}

await runUntilSignal('relay-sender', agent, agent.options.logger);
