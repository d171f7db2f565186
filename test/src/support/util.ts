/** Test support in one import; each part lives in a module named after its concern. */
export { track, closeAll, testLogger, captureLogger, waitFor, eventually } from './lifecycle.js';
export { MiB, tmpDir, randomFile, sha256File, partialEntries, publishedEntries, type RandomFile } from './files.js';
export { REPO_ROOT, BIN, spawnBin, runBin, runAsNobody, NOBODY, freePort, LoggedProcess, type CliResult, type LogLine } from './processes.js';
export { TOKEN, startReceiver, startLink, connectedLink, commitFile, send, type TestReceiver, type SendResult } from './peers.js';
export { rawClient, chunkOf, type RawClient } from './raw-client.js';
export { expectThrowsCode, expectRejectsCode } from './assertions.js';
export { startReceiverProcess, type ReceiverProcess } from './receiver-process.js';
export { procMemory, type ProcMemory } from './proc-memory.js';
