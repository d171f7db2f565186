/** What `relay` exits with; a Jenkins step reads these. */
import { ErrorCode, type RelayError } from '@relayer/common';

export const ExitCode = {
  /** Every file confirmed by every target. */
  OK: 0,
  /** A transfer failed or was refused, or the files could not be read: the command was right, the send was not. */
  FAILED: 1,
  /** What the caller typed is wrong (an option, a --to name, an --as name), found before anything was sent. */
  USAGE: 2,
  /** The sender agent's socket cannot be reached. */
  NO_AGENT: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Codes that mean "the command line is wrong" when they come before the job started. */
const CALLER_MISTAKES = new Set<ErrorCode>([ErrorCode.USAGE, ErrorCode.BAD_NAME, ErrorCode.UNKNOWN_RECEIVER]);

/**
 * The exit status for an error that ended `relay send`: 2 for a typing mistake found before anything was
 * sent (a script tells "fix the command" from "the node refused the file"), else 1.
 */
export function exitCodeFor(err: RelayError, jobStarted: boolean): ExitCode {
  return !jobStarted && CALLER_MISTAKES.has(err.code) ? ExitCode.USAGE : ExitCode.FAILED;
}
