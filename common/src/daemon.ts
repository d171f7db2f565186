/** How both agents' CLIs run: start, then close cleanly on SIGINT/SIGTERM (a second signal forces exit). */
import type { Logger } from 'pino';

export interface Daemon {
  start(): Promise<unknown>;
  close(): Promise<void>;
}

export async function runUntilSignal(name: string, daemon: Daemon, log: Logger): Promise<void> {
  // Listened for before start(): a signal that comes once the daemon says it is up (or while it starts) is
  // never met by Node's default action, which would end the process without closing it.
  let closing = false;
  let started: Promise<unknown> = Promise.resolve();
  const stop = (signal: NodeJS.Signals): void => {
    if (closing) process.exit(1);
    closing = true;
    log.info({ signal }, 'shutting down');
    started.catch(() => undefined).then(() => daemon.close()).then(() => process.exit(0), (err: unknown) => {
      log.error({ err }, 'close failed');
      process.exit(1);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    started = daemon.start();
    await started;
  } catch (err) {
    process.stderr.write(`${name}: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
