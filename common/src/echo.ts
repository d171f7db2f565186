/**
 * A value the user typed (a name, a path, a target) is echoed back in messages bounded: a 20,000-character
 * `--as` must not come back as 20 KB of output. The middle goes, where the ends tell the value apart.
 */

/** Characters of a user value kept in a message. */
export const ECHO_MAX = 200;

/** `text` itself when short; else its first and last characters around an ellipsis saying how much went. */
export function elide(text: string, max: number = ECHO_MAX): string {
  if (text.length <= max) return text;
  // By code point, so a cut never splits a surrogate pair; room for the marker, "…(19800 more)…", within max.
  const chars = [...text];
  if (chars.length <= max) return text;
  const keep = Math.max(2, max - 24);
  const head = Math.ceil(keep / 2);
  return `${chars.slice(0, head).join('')}…(${chars.length - keep} more)…${chars.slice(chars.length - (keep - head)).join('')}`;
}

/** Every single-quoted value in `text` (how commander echoes an argument) elided to `max`. */
export function elideQuoted(text: string, max: number = ECHO_MAX): string {
  return text.replace(/'([^'\n]*)'/g, (_, inner: string) => `'${elide(inner, max)}'`);
}

/** A user value in double quotes (JSON), elided to `max` first: how messages name what was typed. */
export function quoted(text: string, max: number = ECHO_MAX): string {
  return JSON.stringify(elide(String(text), max));
}

/** Text from a peer or a user is shown, never interpreted: control characters (terminal escapes) are replaced. */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}
