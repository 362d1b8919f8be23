/**
 * The one duration parser of the tree. Config keys, capability sections and API query
 * parameters all read durations here, so "500ms", "1.5s", "2m", "1h" and "1d" mean the same
 * wherever an operator writes them.
 *
 * What a number without a unit means differs by place, and each caller says it (`bare`):
 * milliseconds under `*_ms` keys and in relay timers; seconds in `?wait=` on every API route
 * (the storage API's documented form, and since 2026-12-06 the local API's too, where it had
 * meant milliseconds); refused in config values, where "5" would be
 * a guess between seconds and milliseconds. The result is exact (fractions of a millisecond
 * included); a caller that needs whole milliseconds checks or rounds.
 */

export const durationUnitMs = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
} as const;

export type DurationUnit = keyof typeof durationUnitMs;

/** The units, as listed in error messages. */
export const durationUnits = Object.keys(durationUnitMs).join(", ");

const pattern = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/;

/**
 * "500ms", "1.5s", "2m", "1h", "1d" (spaces around allowed) to milliseconds; a bare number in
 * `bare` units, or undefined without `bare`; undefined for anything malformed or negative.
 */
export function parseDuration(text: string, bare?: DurationUnit): number | undefined {
  const match = pattern.exec(text);
  if (!match) return undefined;
  const unit = (match[2] as DurationUnit | undefined) ?? bare;
  if (unit === undefined) return undefined;
  return Number(match[1]) * durationUnitMs[unit];
}
