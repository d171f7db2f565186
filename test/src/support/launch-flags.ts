/** The Node flags a bin starts itself with, for starting it as `node <flags> <bin>` the way it runs on its own. */
import { readFileSync } from 'node:fs';

/**
 * A bin is either plain (`#!/usr/bin/env node`: no flags) or re-executes itself with flags Node refuses in
 * NODE_OPTIONS (`#!/bin/sh`, then `":" //; exec node <flags> "$0" "$@"`, as relay-receiver does). Tests, the
 * bench and the demo start bins as `node <flags> <bin>` and read the flags from the bin itself, so they run
 * what the bin runs.
 */
export function launchFlags(file: string): string[] {
  const [first, second] = readFileSync(file, 'utf8').split('\n', 2);
  if (first === '#!/usr/bin/env node') return [];
  const m = first === '#!/bin/sh' ? /^":" \/\/; exec node((?: --?[\w-]+(?:=[\w.-]+)?)*) "\$0" "\$@"$/.exec(second ?? '') : null;
  if (!m) throw new Error(`${file}: neither "#!/usr/bin/env node" nor "#!/bin/sh" + ":" //; exec node <flags> "$0" "$@": ${first}`);
  return m[1]!.split(' ').filter(Boolean);
}
