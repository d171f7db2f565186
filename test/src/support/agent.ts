/** A real `relay-sender` child process for end-to-end tests, and `relay` run against its control socket. */
import path from 'node:path';
import { tmpDir } from './files.js';
import { TOKEN } from './peers.js';
import { BIN, runBin, spawnBin, type CliResult, type LoggedProcess, type LogLine } from './processes.js';

export type AgentLog = LogLine & { receiver?: string; state?: string };

export class AgentProcess {
  constructor(readonly process: LoggedProcess, readonly socketPath: string) {}

  get logs(): AgentLog[] {
    return this.process.logs as AgentLog[];
  }

  get child(): LoggedProcess['child'] {
    return this.process.child;
  }

  /** Waits for a log line whose msg is `msg` (and, optionally, more conditions). */
  async waitLog(msg: string, match: (l: AgentLog) => boolean = () => true, timeoutMs = 20_000): Promise<[AgentLog]> {
    return [await this.process.waitLog(msg, match as (l: LogLine) => boolean, timeoutMs) as AgentLog];
  }

  on(event: 'log', listener: (l: AgentLog) => void): this {
    this.process.on(event, listener);
    return this;
  }

  /** `relay <args>` against this agent's socket. */
  relay(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
    return runBin(BIN.relay, args, { env: { RELAY_SOCKET: this.socketPath, ...env } });
  }

  async stop(): Promise<void> {
    await this.process.kill('SIGTERM');
  }
}

export interface AgentStartOptions {
  receivers: Record<string, string>;
  allowRoots: string[];
  heartbeat?: string;
  extraArgs?: string[];
  /** The agent's token (default: the receivers' TOKEN). */
  token?: string;
  /** More environment for the agent process. */
  env?: Record<string, string>;
}

/** Starts relay-sender on a socket in a fresh temp folder and waits until it says it started. */
export async function startAgent(opts: AgentStartOptions): Promise<AgentProcess> {
  const socketPath = path.join(await tmpDir('relay-agent-'), 'agent.sock');
  const args = [
    '--socket', socketPath, '--heartbeat', opts.heartbeat ?? '200ms', '--log-level', 'debug',
    ...Object.entries(opts.receivers).flatMap(([n, u]) => ['--receiver', `${n}=${u}`]),
    ...opts.allowRoots.flatMap((r) => ['--allow-root', r]),
    ...(opts.extraArgs ?? []),
  ];
  const p = spawnBin(BIN.sender, args, { env: { RELAY_TOKEN: opts.token ?? TOKEN, ...opts.env }, stopSignal: 'SIGTERM' });
  const agent = new AgentProcess(p, socketPath);
  await agent.waitLog('sender agent started');
  return agent;
}
