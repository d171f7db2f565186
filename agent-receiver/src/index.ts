export { Receiver } from './receiver.js';
export { RECEIVER_DEFAULTS, resolveReceiverOptions, type ReceiverOptions } from './options.js';
export { PartialStore, partialKey, type OpenedPartial } from './partial-store.js';
export { IncomingTransfer, TransferState } from './incoming-transfer.js';
export { TransferRegistry, type RegistryLimits } from './transfer-registry.js';
export { OfferCommitLock } from './offer-commit-lock.js';
export { FinalHashCache } from './final-hash-cache.js';
export type { Owner } from './owner.js';
export { ReceiverState, type ReceiverStats } from './receiver.js';
