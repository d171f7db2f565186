/** The Node flags a bin starts itself with, for starting it as `node <flags> <bin>` the way it runs on its own. */
import path from 'node:path';
import { RECEIVER_NODE_FLAGS } from '@relayer/agent-receiver';

/**
 * relay-receiver execs Node with RECEIVER_NODE_FLAGS (flags Node refuses in NODE_OPTIONS); the other bins
 * start plain. Tests, the bench and the demo start bins as `node <flags> <bin>` with these, so they run
 * what the bin runs; test/src/unit/node-options.test.ts checks the running bins have exactly them.
 */
export function launchFlags(file: string): string[] {
  return path.basename(file).startsWith('relay-receiver') ? [...RECEIVER_NODE_FLAGS] : [];
}
