/** The real `relay-receiver` bin as a child process, for kill -9 and CLI tests. */
import { BIN, spawnBin, type Exit, type LoggedProcess } from './processes.js';
import { TOKEN } from './peers.js';

export interface ReceiverProcess {
  process: LoggedProcess;
  child: LoggedProcess['child'];
  pid: number;
  port: number;
  url: string;
  /** Parsed JSON log lines from stderr so far. */
  logs: LoggedProcess['logs'];
  stderr: () => string;
  exited: Promise<Exit>;
}

/** Starts relay-receiver (token from RELAY_TOKEN) and resolves once it logs "receiver listening". */
export async function startReceiverProcess(opts: { dir: string; port?: number; args?: string[]; env?: Record<string, string | undefined> }): Promise<ReceiverProcess> {
  const args = ['--host', '127.0.0.1', '--port', String(opts.port ?? 0), '--dir', opts.dir, '--min-free', '0', ...(opts.args ?? [])];
  const p = spawnBin(BIN.receiver, args, { env: { RELAY_TOKEN: TOKEN, RELAY_TOKEN_FILE: undefined, RELAY_LOG_LEVEL: undefined, ...opts.env } });
  const listening = await p.waitLog('receiver listening');
  const port = listening.port as number;
  return { process: p, child: p.child, pid: p.pid, port, url: `http://127.0.0.1:${port}`, logs: p.logs, stderr: () => p.stderr(), exited: p.exited };
}
