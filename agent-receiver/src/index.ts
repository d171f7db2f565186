export { Receiver } from './receiver.js';
export { RECEIVER_DEFAULTS, resolveReceiverOptions, type ReceiverOptions } from './options.js';
export { PartialStore, partialKey } from './partial-store.js';
export { IncomingTransfer, TransferState } from './incoming-transfer.js';
export { ReceiverMetrics } from './metrics.js';
