/** One way to make loggers: JSON lines for machines, pino-pretty when a person watches a TTY. */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LoggerOptions {
  name: string;
  level?: LevelWithSilent | string;
  /** Pretty output; default: when stderr is a TTY. */
  pretty?: boolean;
  /** Where JSON lines go; default stderr, so a CLI's stdout stays for results. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const level = opts.level ?? 'info';
  const pretty = opts.pretty ?? Boolean(process.stderr.isTTY);
  const base = {
    name: opts.name,
    level,
    // A token must never reach a log line, whatever object is logged.
    redact: { paths: ['token', '*.token', 'auth.token', 'headers.authorization'], censor: '[redacted]' },
    // Errors are logged as `err` and go through pino's serializer (type, message, code, stack, cause).
    serializers: { err: pino.stdSerializers.err },
  };
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { destination: 2, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
  }
  return pino(base, (opts.destination as pino.DestinationStream | undefined) ?? pino.destination({ fd: 2, sync: true }));
}
