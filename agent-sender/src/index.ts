export { Link, LinkState, type LinkOptions, type LinkSnapshot } from './link/link.js';
export { ReceiverSocket, UnmaskedWebSocket, type ReceiverSocketHandlers } from './link/receiver-socket.js';
export { OutgoingTransfer, OutgoingState, type Confirmation } from './transfer/outgoing-transfer.js';
export { ChunkWindow, type ChunkChannel, type ChunkWindowInit } from './transfer/chunk-window.js';
export { ChunkBuffers } from './transfer/chunk-buffers.js';
export { RetryPolicy } from './transfer/retry-policy.js';
export { RunningHash, type SourceHash } from './transfer/running-hash.js';
export { ThreadHash } from './transfer/thread-hash.js';
export { SharedHashes } from './transfer/shared-hashes.js';
export { TRANSFER_DEFAULTS, checkTransferOptions, type TransferOptions } from './transfer/transfer-options.js';
export { runJob, type JobSpec, type JobContext } from './job/job.js';
export type { JobEvent } from './job/job-events.js';
export { AllowRoots, expandSources, checkAllowed, openAllowed, type Sources } from './job/sources.js';
export { FileList, type SourceFile, type SourceList } from './job/file-list.js';
export { sendDirect, type DirectSendOptions } from './job/direct.js';
export { createRenderer, pickMode } from './cli/render.js';
export { ExitCode } from './cli/exit-codes.js';
export { SenderAgent } from './agent/agent.js';
export {
  resolveSenderAgentOptions, parseReceivers, parseDiscover, parseListen, systemResolver, SENDER_AGENT_DEFAULTS,
  type SenderAgentOptions, type ReceiverEntry, type DiscoverEntry, type Resolver, type HttpListen,
} from './agent/agent-options.js';
export { Discovery } from './link/discovery.js';
export { SenderMetrics } from './agent/metrics.js';
export { AgentHttpServer, type AgentHealth } from './agent/http-server.js';
export { defaultSocketPath, isControlRequest, splitReplies, type StatusReply, type ControlRequest } from './control/control-protocol.js';
export { sendViaAgent, fetchStatus, AgentUnreachableError } from './control/control-client.js';
export { checkSocketTrust, defaultSocketDir, prepareSocketPath, trustedOwners } from './control/socket-trust.js';
export { makeCerts, parseCertNode, type CertNode, type CertsResult } from './agent/certs.js';
export { readCaFile, tlsFailure } from './link/tls-client.js';
export { SmallFileReader } from './job/small-file-reader.js';
export { planBatches, type SmallFile, type BatchLimits } from './job/small-files.js';
export * from './limits.js';
export { runDeploy, type DeploySpec } from './job/deploy.js';
export { checkDeploy, checkRelease, checkReleaseId, checkThen, namesInRelease, DEPLOY_DEFAULTS, type ReleaseSpec } from './job/deploy-options.js';
export { buildManifest, ManifestBuild, releaseFiles, type ManifestOptions } from './job/manifest.js';
export { ManifestCache } from './job/manifest-cache.js';
export { listReleases, rollbackAll, type NodeReleases } from './job/release-admin.js';
export { releasesDirect, rollbackDirect } from './job/direct.js';
