/**
 * floatip's version, from package.json (one level above both src/ and dist/), read once.
 * "unknown" if the file cannot be read, so that nothing fails for want of a version string.
 */
import { readFileSync } from "node:fs";

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version?: unknown;
    };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}

export const floatipVersion = readVersion();
