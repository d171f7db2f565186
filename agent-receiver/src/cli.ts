/** `relay-receiver`: turns argv and env into ReceiverOptions, runs the receiver until SIGINT/SIGTERM. */
import { Command, CommanderError, Option } from 'commander';
import { createLogger, loadToken, parseDuration, parseSize, RelayError, runUntilSignal, VERSION } from '@relayer/common';
import { Receiver } from './receiver.js';
import { RECEIVER_DEFAULTS } from './options.js';

const program = new Command('relay-receiver')
  .description('Relayer receiver agent: accepts verified, resumable file transfers from relay senders.')
  .version(VERSION)
  .addOption(new Option('--host <addr>', 'address to listen on').env('RELAY_HOST').default(RECEIVER_DEFAULTS.host))
  .addOption(new Option('--port <n>', 'port to listen on').env('RELAY_PORT').default(String(RECEIVER_DEFAULTS.port)))
  .addOption(new Option('--dir <path>', 'folder files are published into').env('RELAY_DIR').default(RECEIVER_DEFAULTS.dir))
  .addOption(new Option('--token-file <path>', 'file holding the shared token (else env RELAY_TOKEN)').env('RELAY_TOKEN_FILE'))
  .addOption(new Option('--max-file-size <size>', 'largest file accepted').env('RELAY_MAX_FILE_SIZE').default('100G'))
  .addOption(new Option('--min-free <size>', 'refuse offers that would leave less free disk').env('RELAY_MIN_FREE').default('1G'))
  .addOption(new Option('--partial-ttl <duration>', 'remove partial transfers untouched this long').env('RELAY_PARTIAL_TTL').default('24h'))
  .addOption(new Option('--display-dir <path>', 'the --dir folder as the node\'s host sees it, shown in confirmations (e.g. /srv/relay-inbox)').env('RELAY_DISPLAY_DIR'))
  .addOption(new Option('--node <name>', 'node name in heartbeats and /healthz (default: host name)').env('RELAY_NODE'))
  .addOption(new Option('--summary-every <duration>', 'status summary log interval (0 = off)').env('RELAY_SUMMARY_EVERY').default('60s'))
  .addOption(new Option('--log-level <level>', 'trace, debug, info, warn, error').env('RELAY_LOG_LEVEL').default('info'))
  .exitOverride()
  .configureOutput({ outputError: (str, write) => write(str) });

async function main(): Promise<void> {
  let opts;
  try {
    opts = program.parse().opts<Record<string, string | undefined>>();
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
    throw err;
  }
  let receiver: Receiver;
  try {
    const port = Number(opts.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RelayError('USAGE', `--port: not a port: ${opts.port}`);
    receiver = new Receiver({
      host: opts.host,
      port,
      dir: opts.dir,
      token: loadToken(opts.tokenFile, process.env.RELAY_TOKEN),
      maxFileSize: parseSize(opts.maxFileSize!),
      minFree: parseSize(opts.minFree!),
      partialTtlMs: parseDuration(opts.partialTtl!),
      node: opts.node,
      displayDir: opts.displayDir,
      summaryEveryMs: parseDuration(opts.summaryEvery!),
      logger: createLogger({ name: 'relay-receiver', level: opts.logLevel }),
    });
  } catch (err) {
    process.stderr.write(`relay-receiver: ${(err as Error).message}\n`);
    process.exit(2);
  }
  await runUntilSignal('relay-receiver', receiver, receiver.options.logger);
}

void main();
