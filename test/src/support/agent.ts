/**
 * A real `relay-sender` child process for end-to-end tests. Its JSON log lines are parsed and emitted
 * as "log" events, so tests wait on what the agent says (connected, stale, job cancelled …), not on time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { BIN, runBin, TOKEN, tmpDir, track, waitFor, type CliResult } from './util.js';

export interface AgentLog {
  level: number;
  msg: string;
  receiver?: string;
  state?: string;
  [key: string]: unknown;
}

export class AgentProcess extends EventEmitter {
  readonly logs: AgentLog[] = [];
  private exited: Promise<void>;

  constructor(readonly child: ChildProcess, readonly socketPath: string) {
    super();
    createInterface({ input: child.stderr! }).on('line', (line) => {
      let entry: AgentLog;
      try {
        entry = JSON.parse(line) as AgentLog;
      } catch {
        return;
      }
      this.logs.push(entry);
      this.emit('log', entry);
    });
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  /** Waits for a log line whose msg is `msg` (and, optionally, more conditions). */
  waitLog(msg: string, match: (l: AgentLog) => boolean = () => true, timeoutMs = 20_000): Promise<[AgentLog]> {
    const seen = this.logs.find((l) => l.msg === msg && match(l));
    if (seen) return Promise.resolve([seen]);
    return waitFor<[AgentLog]>(this, 'log', (l) => l.msg === msg && match(l), timeoutMs);
  }

  /** `relay <args>` against this agent's socket. */
  relay(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
    return runBin(BIN.relay, args, { env: { RELAY_SOCKET: this.socketPath, ...env } });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    await this.exited;
  }
}

export interface AgentStartOptions {
  receivers: Record<string, string>;
  allowRoots: string[];
  heartbeat?: string;
  extraArgs?: string[];
  /** The agent's token (default: the receivers' TOKEN). */
  token?: string;
}

/** Starts relay-sender on a socket in a fresh temp folder and waits until it says it started. */
export async function startAgent(opts: AgentStartOptions): Promise<AgentProcess> {
  const socketPath = path.join(await tmpDir('relay-agent-'), 'agent.sock');
  const args = [
    BIN.sender, '--socket', socketPath, '--heartbeat', opts.heartbeat ?? '200ms', '--log-level', 'debug',
    ...Object.entries(opts.receivers).flatMap(([n, u]) => ['--receiver', `${n}=${u}`]),
    ...opts.allowRoots.flatMap((r) => ['--allow-root', r]),
    ...(opts.extraArgs ?? []),
  ];
  const child = spawn(process.execPath, args, { env: { ...process.env, RELAY_TOKEN: opts.token ?? TOKEN }, stdio: ['ignore', 'ignore', 'pipe'] });
  const agent = new AgentProcess(child, socketPath);
  track(() => agent.stop());
  await agent.waitLog('sender agent started');
  return agent;
}
