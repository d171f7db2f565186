export { Link, LinkState, type LinkOptions, type LinkSnapshot } from './link.js';
export { OutgoingTransfer, OutgoingState, TRANSFER_DEFAULTS, type TransferOptions, type Confirmation } from './outgoing-transfer.js';
export { runJob, type JobSpec, type JobContext } from './job.js';
export type { JobEvent } from './job-events.js';
export { expandSources, checkAllowed, type SourceFile } from './sources.js';
export { sendDirect, type DirectSendOptions } from './direct.js';
export { createRenderer, pickMode } from './render.js';
export { ExitCode } from './exit-codes.js';
