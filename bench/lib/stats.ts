/** Order statistics and plain-text tables for benchmark output. */

/** Nearest-rank percentile (p in 0..100) of the defined values; undefined when there are none. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

export interface Summary {
  readonly count: number;
  readonly medianMs: number | undefined;
  readonly p90Ms: number | undefined;
  readonly maxMs: number | undefined;
}

export function summarize(values: readonly number[]): Summary {
  return {
    count: values.length,
    medianMs: percentile(values, 50),
    p90Ms: percentile(values, 90),
    maxMs: percentile(values, 100),
  };
}

/** Milliseconds with one decimal, or "-" when unknown. */
export function ms(value: number | undefined): string {
  return value === undefined ? "-" : value.toFixed(1);
}

/** Left-aligned first column, right-aligned others, two spaces between columns. */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
