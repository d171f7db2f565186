/** The Node flags of a bin's #! line, for starting it as `node <flags> <bin>` the way it runs on its own. */
import { readFileSync } from 'node:fs';

/**
 * The Node flags a bin's `#!/usr/bin/env -S node …` line gives it (flags Node refuses in NODE_OPTIONS,
 * such as the receiver's --initial-old-space-size). Tests, the bench and the demo start bins as
 * `node <flags> <bin>` and read the flags from the bin itself, so they run what `relay-receiver` runs.
 */
export function shebangFlags(file: string): string[] {
  const first = readFileSync(file, 'utf8').split('\n', 1)[0]!;
  const m = /^#!\S*env -S node((?: --?[\w-]+(?:=\S+)?)*)\s*$/.exec(first) ?? /^#!\S*env node\s*$/.exec(first);
  if (!m) throw new Error(`${file}: its first line is not "#!/usr/bin/env node" or "#!/usr/bin/env -S node <flags>": ${first}`);
  return (m[1] ?? '').split(' ').filter(Boolean);
}
