export { Link, LinkState, type LinkOptions, type LinkSnapshot } from './link.js';
export { OutgoingTransfer, OutgoingState, type Confirmation } from './outgoing-transfer.js';
export { ChunkWindow, type ChunkChannel, type ChunkWindowInit } from './chunk-window.js';
export { ChunkBuffers } from './chunk-buffers.js';
export { RetryPolicy } from './retry-policy.js';
export { RunningHash } from './running-hash.js';
export { FINISHED_KEPT, SharedHashes } from './shared-hashes.js';
export { TRANSFER_DEFAULTS, checkTransferOptions, type TransferOptions } from './transfer-options.js';
export { runJob, type JobSpec, type JobContext } from './job.js';
export type { JobEvent } from './job-events.js';
export { AllowRoots, expandSources, checkAllowed, openAllowed, MAX_FILES_PER_JOB, type Sources } from './sources.js';
export { FileList, type SourceFile, type SourceList } from './file-list.js';
export { sendDirect, type DirectSendOptions } from './direct.js';
export { createRenderer, pickMode } from './render.js';
export { ExitCode } from './exit-codes.js';
export { SenderAgent } from './agent.js';
export {
  resolveSenderAgentOptions, parseReceivers, parseDiscover, parseListen, systemResolver, SENDER_AGENT_DEFAULTS,
  type SenderAgentOptions, type ReceiverEntry, type DiscoverEntry, type Resolver, type HttpListen,
} from './agent-options.js';
export { Discovery } from './discovery.js';
export { SenderMetrics } from './metrics.js';
export { AgentHttpServer, type AgentHealth } from './http-server.js';
export { defaultSocketPath, isControlRequest, splitReplies, type StatusReply, type ControlRequest } from './control-protocol.js';
export { sendViaAgent, fetchStatus, AgentUnreachableError } from './control-client.js';
export { checkSocketTrust, defaultSocketDir, prepareSocketPath, trustedOwners } from './socket-trust.js';
export { makeCerts, parseCertNode, type CertNode, type CertsResult } from './certs.js';
export { readCaFile, tlsFailure } from './tls-client.js';
export { WholeFileReader } from './whole-file-reader.js';
export { planBatches, BATCH_LIMITS, type WholeFile, type BatchLimits } from './whole-files.js';
