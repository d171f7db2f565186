import type { Logger } from 'pino';

/**
 * Who holds a transfer: one sender connection. Ownership is this object, not an id, and it ends when the
 * signal aborts (the connection closed); every step that awaits re-checks it.
 */
export interface Owner {
  readonly id: string;
  readonly log: Logger;
  readonly signal: AbortSignal;
}
