/** Command-line options shared by the benchmarks: `--name value` pairs, numbers checked. */
import { parseArgs } from "node:util";

export function readOptions(
  usage: string,
  spec: Record<string, { default: string }>,
): Record<string, string> {
  const options = Object.fromEntries(
    Object.entries(spec).map(([name, o]) => [
      name,
      { type: "string" as const, default: o.default },
    ]),
  );
  try {
    const { values } = parseArgs({ options, allowPositionals: false });
    return values as Record<string, string>;
  } catch (error) {
    console.error(`${(error as Error).message}\n${usage}`);
    process.exit(2);
  }
}

export function positiveInteger(name: string, text: string, usage: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) {
    console.error(
      `--${name} must be a whole number of 1 or more, got ${JSON.stringify(text)}\n${usage}`,
    );
    process.exit(2);
  }
  return value;
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));
