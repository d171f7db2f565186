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

/** The node and, when known, the host's path of `p` (a path inside the receiver's folder). */
export function displayOf(p: string, info: DisplayInfo): { node: string; displayPath?: string } {
  if (info.displayDir === undefined) return { node: info.node };
  const rel = path.relative(info.dir, p);
  // Published files are always inside dir; anything else is shown as it is rather than as a made-up path.
  if (rel.startsWith('..') || path.isAbsolute(rel)) return { node: info.node };
  return { node: info.node, displayPath: path.posix.join(info.displayDir, rel.split(path.sep).join('/')) };
}

export function withDisplay(received: ReceivedFrame, info: DisplayInfo): ReceivedFrame {
  return { ...received, ...displayOf(received.path, info) };
}
