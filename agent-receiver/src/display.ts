/**
 * What a confirmation tells the sender about where the file is. A receiver in a container writes to its
 * own path (/data/app.bin); the person reading `relay send` output wants the node and the host's path.
 */
import path from 'node:path';
import type { ReceivedFrame } from '@relayer/common';

export interface DisplayInfo {
  node: string;
  /** The receiver's real folder (absolute). */
  dir: string;
  /** The same folder as the host sees it, when known. */
  displayDir?: string;
}

export function withDisplay(received: ReceivedFrame, info: DisplayInfo): ReceivedFrame {
  const out: ReceivedFrame = { ...received, node: info.node };
  if (info.displayDir !== undefined) {
    const rel = path.relative(info.dir, received.path);
    // Published files are always inside dir; anything else is shown as it is rather than as a made-up path.
    if (!rel.startsWith('..') && !path.isAbsolute(rel)) out.displayPath = path.posix.join(info.displayDir, rel.split(path.sep).join('/'));
  }
  return out;
}
