/** What `relay` exits with; a Jenkins step reads these. */
export const ExitCode = {
  /** Every file confirmed by every target. */
  OK: 0,
  /** A transfer failed or was refused. */
  FAILED: 1,
  /** Bad usage. */
  USAGE: 2,
  /** The sender agent's socket cannot be reached. */
  NO_AGENT: 3,
} as const;
