/**
 * The small validator library of the tree: the shape checks that every reader of input it
 * does not trust needs (peer datagrams, the config file, capability sections, messages on the
 * capability channels). Pure, so the core uses it too.
 */

/** A plain object (not null, not an array): the only kind of value whose fields are read. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A whole number from 0 to 2^53 - 1: counts, sequence numbers, milliseconds. */
export function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** A non-empty string of at most `maxLength` characters (node ids, interface names). */
export function isName(value: unknown, maxLength = 255): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= maxLength;
}
