import { readFileSync } from 'node:fs';

/** Relayer's version, from the common package's manifest. */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
