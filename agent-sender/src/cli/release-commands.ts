/** `relay releases` and `relay rollback`: a release's state on the nodes, and switching it back. */
import { Command, Option } from 'commander';
import {
  arg, createLogger, elide, ErrorCode, formatBytes, isReceiverUrl, loadToken, parseDuration, printable, RelayError,
} from '@relayer/common';
import { defaultSocketPath, releasesViaAgent, streamJob, table } from '../control/control-client.js';
import type { NodeReleases } from '../job/release-admin.js';
import { readCaFile } from '../link/tls-client.js';
import { TRANSFER_DEFAULTS } from '../transfer/transfer-options.js';
import { ExitCode } from './exit-codes.js';
import { createRenderer, pickMode } from './render.js';

interface AdminFlags {
  to: string;
  direct?: boolean;
  timeout: number;
  json?: boolean;
  socket: string;
  agentUser?: string;
  tokenFile?: string;
  token?: string;
  ca?: string;
  logLevel: string;
}

interface RollbackFlags extends AdminFlags {
  release?: string;
  then?: string;
  actionTimeout?: number;
}

/** The options a command that talks to nodes shares with `relay send` (through the agent, or --direct). */
function withTargets(cmd: Command): Command {
  return cmd
    .requiredOption('--to <targets>', 'comma-separated receiver names known to the agent, "all", or URLs with --direct; may be repeated', (v: string, prev?: string) => (prev ? `${prev},${v}` : v))
    .option('--direct', 'talk to receiver URLs from this process, without the sender agent')
    .addOption(new Option('--timeout <duration>', 'give up on a node after this long without an answer').argParser(arg(parseDuration)).default(TRANSFER_DEFAULTS.timeoutMs, '10m'))
    .option('--json', 'print JSON instead of text')
    .addOption(new Option('--socket <path>', 'the sender agent\'s control socket').env('RELAY_SOCKET').default(defaultSocketPath(process.env)))
    .addOption(new Option('--agent-user <user>', 'besides root and you, the user trusted to own the agent\'s socket (name or uid)').env('RELAY_AGENT_USER'))
    .addOption(new Option('--token-file <path>', '--direct: file holding the shared token (or the token itself in RELAY_TOKEN)').env('RELAY_TOKEN_FILE'))
    .addOption(new Option('--token <token>', '--direct: the shared token').env('RELAY_TOKEN').hideHelp())
    .addOption(new Option('--ca <file>', '--direct: PEM CA certificate to trust for https:// receivers').env('RELAY_CA'))
    .addOption(new Option('--log-level <level>', 'log level for --direct diagnostics on stderr').env('RELAY_LOG_LEVEL').default('warn'));
}

function targetsOf(f: AdminFlags): string[] {
  const targets = f.to.split(',').map((s) => s.trim()).filter(Boolean);
  if (targets.length === 0) throw new RelayError(ErrorCode.USAGE, '--to needs at least one target');
  if (f.direct) for (const t of targets) if (!isReceiverUrl(t)) throw new RelayError(ErrorCode.USAGE, `--direct needs URLs in --to, got ${elide(t)}`);
  return targets;
}

async function directLinks(f: AdminFlags, targets: string[]): Promise<{ urls: string[]; token: string; ca?: string | Buffer; logger: ReturnType<typeof createLogger> }> {
  return { urls: targets, token: loadToken(f.tokenFile, f.token), ca: readCaFile(f.ca), logger: createLogger({ name: 'relay', level: f.logLevel }) };
}

async function releases(name: string, f: AdminFlags): Promise<number> {
  const to = targetsOf(f);
  let nodes: NodeReleases[];
  if (f.direct) {
    const { releasesDirect } = await import('../job/direct.js');
    nodes = await releasesDirect({ ...(await directLinks(f, to)), release: name, timeoutMs: f.timeout });
  } else {
    nodes = (await releasesViaAgent(f.socket, { type: 'releases', release: name, to, timeoutMs: f.timeout }, f.agentUser)).nodes;
  }
  const ok = nodes.every((n) => n.ok);
  if (f.json) {
    process.stdout.write(`${JSON.stringify({ release: name, nodes })}\n`);
    return ok ? ExitCode.OK : ExitCode.FAILED;
  }
  const rows: string[][] = [];
  for (const n of nodes) {
    if (!n.ok) {
      rows.push([n.target, '-', '-', '-', '-', `${n.code}: ${printable(elide(n.message, 100))}`]);
      continue;
    }
    if (n.releases.length === 0) rows.push([n.target, '-', '-', '-', '-', 'no releases']);
    for (const r of n.releases) {
      rows.push([n.target, r.id, new Date(r.stagedAt).toISOString(), r.files.toLocaleString('en-US'), formatBytes(r.bytes), r.current ? 'current' : '']);
    }
  }
  process.stdout.write(table(['NODE', 'RELEASE', 'STAGED', 'FILES', 'BYTES', 'STATE'], rows));
  return ok ? ExitCode.OK : ExitCode.FAILED;
}

async function rollback(name: string, f: RollbackFlags): Promise<number> {
  const to = targetsOf(f);
  if (f.then === undefined && f.actionTimeout !== undefined) throw new RelayError(ErrorCode.USAGE, '--action-timeout goes with --then NAME');
  const then = f.then === undefined ? undefined : { action: f.then, timeoutMs: f.actionTimeout };
  const renderer = createRenderer({ mode: pickMode(Boolean(f.json)) });
  try {
    if (f.direct) {
      const { rollbackDirect } = await import('../job/direct.js');
      const ok = await rollbackDirect({ ...(await directLinks(f, to)), release: name, id: f.release, then, timeoutMs: f.timeout }, renderer);
      return ok ? ExitCode.OK : ExitCode.FAILED;
    }
    const ok = await streamJob(f.socket, {
      type: 'rollback', release: name, to, timeoutMs: f.timeout, ...(f.release ? { id: f.release } : {}), ...(then ? { then } : {}),
    }, renderer, undefined, f.agentUser);
    return ok ? ExitCode.OK : ExitCode.FAILED;
  } finally {
    renderer.end();
  }
}

export function makeReleaseCommands(): Command[] {
  const list = withTargets(new Command('releases')
    .description('list a release\'s versions on each node (id, when staged, files, bytes, which is current); exits 1 when a node did not answer')
    .showHelpAfterError("see 'relay releases --help'")
    .argument('<name>', 'the release, as given to relay send --release'))
    .action(async (name: string, flags: AdminFlags) => {
      process.exitCode = await releases(name, flags);
    });
  const back = withTargets(new Command('rollback')
    .description('switch a release\'s current back on each node, atomically (default: to the release before the current one)')
    .showHelpAfterError("see 'relay rollback --help'")
    .argument('<name>', 'the release, as given to relay send --release'))
    .option('--release <id>', 'the release id to switch to (as relay releases lists it)')
    .option('--then <action>', 'run this node action on each node after the switch')
    .addOption(new Option('--action-timeout <duration>', '--then: kill the action after this long (default 5m)').argParser(arg(parseDuration)))
    .action(async (name: string, flags: RollbackFlags) => {
      process.exitCode = await rollback(name, flags);
    });
  return [list, back];
}
