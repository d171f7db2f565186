/** Drops keys whose value is undefined, so `{ ...defaults, ...definedOnly(given) }` keeps the defaults. */
export function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A receiver address: http(s) or ws(s) URL. */
export function isReceiverUrl(text: string): boolean {
  return /^(https?|wss?):\/\/./.test(text);
}
