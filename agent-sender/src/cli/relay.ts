/** `relay`: the command a Jenkins step runs. Only this file reads argv and env for it. */
import { Command, CommanderError, Option } from 'commander';
import { arg, createLogger, elide, elideQuoted, ErrorCode, isReceiverUrl, loadToken, parseDuration, parsePositiveInt, parseSize, RelayError, VERSION, type ThenSpec } from '@relayer/common';
import { dropOutputOnClosedPipe } from './closed-pipe.js';
import { makeCertsCommand } from './certs-cli.js';
import { makeReleaseCommands } from './release-commands.js';
import { DEPLOY_DEFAULTS, type ReleaseSpec } from '../job/deploy-options.js';
import { readCaFile } from '../link/tls-client.js';
import { ExitCode, exitCodeFor } from './exit-codes.js';
import type { JobEvent } from '../job/job-events.js';
import { createRenderer, EACH_FILE_MAX, pickMode } from './render.js';
import { checkTransferOptions, TRANSFER_DEFAULTS, type TransferOptions } from '../transfer/transfer-options.js';
import { AgentUnreachableError, defaultSocketPath, sendViaAgent, statusViaAgent } from '../control/control-client.js';

interface SendFlags {
  to: string;
  direct?: boolean;
  as?: string;
  chunkSize?: number;
  window?: number;
  filesInFlight?: number;
  smallMax?: number;
  bwlimit?: number;
  timeout: number;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  socket: string;
  tokenFile?: string;
  token?: string;
  agentUser?: string;
  ca?: string;
  concurrency?: number;
  logLevel: string;
  release?: string;
  keep?: number;
  rollbackOnFailure?: boolean;
  then?: string;
  actionTimeout?: number;
}

/** --release/--keep/--rollback-on-failure and --then/--action-timeout, as the request carries them (checked where they run). */
function deployOptions(f: SendFlags): { release?: Partial<ReleaseSpec>; then?: Partial<ThenSpec> } {
  if (f.release === undefined && (f.keep !== undefined || f.rollbackOnFailure)) throw new RelayError(ErrorCode.USAGE, '--keep and --rollback-on-failure go with --release NAME');
  if (f.then === undefined && f.actionTimeout !== undefined) throw new RelayError(ErrorCode.USAGE, '--action-timeout goes with --then NAME');
  return {
    ...(f.release !== undefined ? { release: { name: f.release, keep: f.keep, rollbackOnFailure: Boolean(f.rollbackOnFailure) } } : {}),
    ...(f.then !== undefined ? { then: { action: f.then, timeoutMs: f.actionTimeout } } : {}),
  };
}

function transferOptions(f: SendFlags): Partial<TransferOptions> {
  return checkTransferOptions({ chunkSize: f.chunkSize, window: f.window, filesInFlight: f.filesInFlight, smallFileMax: f.smallMax, bwlimit: f.bwlimit, timeoutMs: f.timeout });
}

async function send(paths: string[], f: SendFlags): Promise<number> {
  const targets = f.to.split(',').map((s) => s.trim()).filter(Boolean);
  if (targets.length === 0) throw new RelayError(ErrorCode.USAGE, '--to needs at least one target');
  const renderer = createRenderer({ mode: pickMode(Boolean(f.json)), quiet: f.quiet, verbose: f.verbose });
  let started = false;
  const render = (e: JobEvent): void => {
    started = true;
    renderer(e);
  };
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const deploy = deployOptions(f);
    if (f.direct) {
      for (const t of targets) if (!isReceiverUrl(t)) throw new RelayError(ErrorCode.USAGE, `--direct needs URLs in --to, got ${elide(t)}`);
      const token = loadToken(f.tokenFile, f.token);
      const logger = createLogger({ name: 'relay', level: f.logLevel });
      // Loaded only here: the socket.io client is not needed by sends through the agent (the Jenkins path).
      const { sendDirect } = await import('../job/direct.js');
      const ok = await sendDirect({
        paths, as: f.as, urls: targets, token, ca: readCaFile(f.ca), transfer: transferOptions(f), ...deploy,
        concurrency: f.concurrency, logger, signal: controller.signal,
      }, render);
      return ok ? ExitCode.OK : ExitCode.FAILED;
    }
    const ok = await sendViaAgent({
      socketPath: f.socket, paths, as: f.as, to: targets, transfer: transferOptions(f), ...deploy, signal: controller.signal, agentUser: f.agentUser,
    }, render);
    return ok ? ExitCode.OK : ExitCode.FAILED;
  } catch (err) {
    if (err instanceof RelayError && !(err instanceof AgentUnreachableError)) throw new SendError(err, exitCodeFor(err, started));
    throw err;
  } finally {
    renderer.end();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** An error that ended a send, with the exit status it calls for. */
class SendError extends Error {
  constructor(readonly error: RelayError, readonly exitCode: ExitCode) {
    super(error.message);
  }
}

dropOutputOnClosedPipe(process.stdout, process.stderr);

const program = new Command('relay')
  .description('Relayer: send files to receiver agents and confirm they arrived byte-identical.')
  .version(VERSION)
  .exitOverride()
  // commander echoes the argument it refuses: bounded like every echoed value (subcommands inherit this).
  .configureOutput({ outputError: (text, write) => write(elideQuoted(text)) })
  // One line and where to look, as rsync, curl and docker do: not the whole help after every typo.
  .showHelpAfterError("see 'relay --help'");

program.command('send')
  .description('send files or directories; exits 0 only when every target confirmed every file')
  .showHelpAfterError("see 'relay send --help'")
  .argument('<paths...>', 'files or directories to send')
  // Repeatable: `--to pi1 --to pi2` adds up, it does not keep only the last.
  .requiredOption('--to <targets>', 'comma-separated receiver names known to the agent, "all", or URLs with --direct; may be repeated', (v: string, prev?: string) => (prev ? `${prev},${v}` : v))
  .option('--direct', 'send from this process straight to receiver URLs, without the sender agent')
  .option('--as <name>', 'name on the receiver (relative path), for a single path')
  .addOption(new Option('--chunk-size <size>', `bytes per chunk (default ${TRANSFER_DEFAULTS.chunkSize / 1024 / 1024}M)`).argParser(arg(parseSize)))
  .addOption(new Option('--window <n>', `chunks in flight (default ${TRANSFER_DEFAULTS.window})`).argParser(arg(parsePositiveInt)))
  .addOption(new Option('--files-in-flight <n>', `files of this send in flight to each receiver at once (default ${TRANSFER_DEFAULTS.filesInFlight})`).argParser(arg(parsePositiveInt)))
  .addOption(new Option('--small-max <size>', `files up to this size travel whole, many per round trip (default ${TRANSFER_DEFAULTS.smallFileMax / 1024}K, at most 1M; 0: every file is offered and sent in chunks)`).argParser(arg(parseSize)))
  .addOption(new Option('--bwlimit <rate>', 'bytes per second per transfer, e.g. 40M').argParser(arg(parseSize)))
  .addOption(new Option('--concurrency <n>', '--direct: transfers of files over 1 MiB at once (default 4)').argParser(arg(parsePositiveInt)))
  .addOption(new Option('--timeout <duration>', 'give up after this long without progress, e.g. a receiver that stays down').argParser(arg(parseDuration)).default(TRANSFER_DEFAULTS.timeoutMs, '10m'))
  .option('--release <name>', 'deploy: the files become a new release <name> on each target (<dir>/<name>/current), switched to atomically once every target has staged it')
  .addOption(new Option('--keep <n>', `--release: releases kept on each node (never fewer than the current and the previous; default ${DEPLOY_DEFAULTS.keep})`).argParser(arg(parsePositiveInt)))
  .option('--rollback-on-failure', '--release: if a switch fails on one target, switch the others back')
  .option('--then <action>', 'run this node action (an executable in the receiver\'s --action-dir) on each target after its files are published; the step fails if it exits non-zero')
  .addOption(new Option('--action-timeout <duration>', '--then: kill the action (and its process group) after this long (default 5m)').argParser(arg(parseDuration)))
  .option('--json', 'print JSON lines instead of text')
  .option('--quiet', 'print only failures and the summary')
  .option('--verbose', `on a terminal too, a line per confirmed file (a send of more than ${EACH_FILE_MAX} files shows progress per receiver)`)
  .addOption(new Option('--socket <path>', 'the sender agent\'s control socket').env('RELAY_SOCKET').default(defaultSocketPath(process.env)))
  .addOption(new Option('--token-file <path>', '--direct: file holding the shared token (or the token itself in RELAY_TOKEN)').env('RELAY_TOKEN_FILE'))
  .addOption(new Option('--agent-user <user>', 'besides root and you, the user trusted to own the agent\'s socket (name or uid)').env('RELAY_AGENT_USER'))
  .addOption(new Option('--token <token>', '--direct: the shared token (prefer --token-file: argv and env are visible to other processes)').env('RELAY_TOKEN').hideHelp())
  .addOption(new Option('--ca <file>', '--direct: PEM CA certificate to trust for https:// receivers').env('RELAY_CA'))
  .addOption(new Option('--log-level <level>', 'log level for --direct diagnostics on stderr').env('RELAY_LOG_LEVEL').default('warn'))
  .addHelpText('after', `
Examples:
  relay send dist/app.tar.gz --to pi1,pi2          the file to two receivers at once
  relay send build/site --to all --as www/site     a folder as its tree, under another name
  relay send firmware.bin --to pi3 --json          JSON lines for scripts
  relay send build/site --to all --release www --then reload
                                                   a release: www/current switches on every node at once, then 'reload' runs
Exit status: 0 every receiver confirmed every file (and every action exited 0); 1 a transfer, a release or an action failed or was refused;
2 a usage mistake found before anything was sent; 3 the sender agent cannot be reached.`)
  .action(async (paths: string[], flags: SendFlags) => {
    process.exitCode = await send(paths, flags);
  });

program.command('status')
  .description('show the receivers the sender agent knows and the transfers in flight; exits 1 when any receiver is not connected')
  .showHelpAfterError("see 'relay status --help'")
  .option('--json', 'print exactly one JSON object')
  .addOption(new Option('--socket <path>', 'the sender agent\'s control socket').env('RELAY_SOCKET').default(defaultSocketPath(process.env)))
  .addOption(new Option('--agent-user <user>', 'besides root and you, the user trusted to own the agent\'s socket (name or uid)').env('RELAY_AGENT_USER'))
  .action(async (flags: { json?: boolean; socket: string; agentUser?: string }) => {
    process.exitCode = await statusViaAgent(flags.socket, Boolean(flags.json), flags.agentUser);
  });

for (const c of makeReleaseCommands()) program.addCommand(c);
program.addCommand(makeCertsCommand());
program.addHelpText('after', `
Examples:
  relay send dist/app.tar.gz --to all    send through the sender agent, exit 0 only when confirmed
  relay status                           the receivers, their state and last error; exit 1 if any is down
  relay releases www --to all            each node's releases of www, and which is current
  relay rollback www --to all            switch www/current back to the previous release on every node
  relay send --help                      every option of a send`);

try {
  await program.parseAsync();
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
  } else if (err instanceof SendError) {
    process.stderr.write(`relay: ${err.error.code}: ${err.error.message}\n`);
    process.exitCode = err.exitCode;
  } else if (err instanceof RelayError) {
    process.stderr.write(`relay: ${err.code}: ${err.message}\n`);
    process.exitCode = err instanceof AgentUnreachableError ? ExitCode.NO_AGENT : err.code === ErrorCode.USAGE ? ExitCode.USAGE : ExitCode.FAILED;
  } else {
    process.stderr.write(`relay: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = ExitCode.FAILED;
  }
}
