/**
 * Debian packages that only benchmarks and tests need (keepalived, stress-ng, faketime):
 * installed on first use, as root, so the README's test command works on a fresh machine.
 */
import { existsSync } from "node:fs";
import { run } from "../adapters/exec.ts";

/**
 * The first of `paths` that exists, after `apt-get install -y PACKAGE` (and one `apt-get
 * update` if the install failed) when none did; undefined, with the reason on standard
 * error, when it cannot be had.
 */
export async function ensureDebianPackage(
  pkg: string,
  paths: readonly string[],
): Promise<string | undefined> {
  const found = () => paths.find((p) => existsSync(p));
  if (found()) return found();
  const install = () =>
    run("apt-get", ["install", "-y", pkg], {
      timeoutMs: 180_000,
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
  try {
    await install();
  } catch {
    try {
      await run("apt-get", ["update"], { timeoutMs: 180_000 });
      await install();
    } catch (error) {
      console.error(
        `${pkg} is not installed and could not be installed: ${(error as Error).message}`,
      );
    }
  }
  return found();
}
