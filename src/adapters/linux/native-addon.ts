/**
 * Loads the native addon (native/build/Release/floatip_arp.node, built by scripts/setup.sh or
 * `cd native && node-gyp rebuild`) once per thread. One .node file carries the ARP sender and
 * prober (arp.ts), realtime scheduling (realtime.ts) and rtnetlink addresses (netlink.ts);
 * each wrapper declares the part of the addon it uses and turns a load failure into its own
 * error class.
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

export const nativeAddonPath = fileURLToPath(
  new URL("../../../native/build/Release/floatip_arp.node", import.meta.url),
);

let addon: Record<string, unknown> | undefined;

/**
 * The addon's exports. Throws the loader's own error when the file is missing or cannot be
 * loaded, and a `NativeAddonOutdated` error when it lacks one of `required` (a build from an
 * older checkout): callers wrap either in their own error with an "*_ADDON_MISSING" code.
 */
export function loadNativeAddon<T>(required: readonly string[] = []): T {
  addon ??= createRequire(import.meta.url)(nativeAddonPath) as Record<string, unknown>;
  const missing = required.filter((name) => typeof addon?.[name] !== "function");
  if (missing.length > 0) {
    throw new NativeAddonOutdated(missing);
  }
  return addon as T;
}

export class NativeAddonOutdated extends Error {
  readonly missing: readonly string[];
  constructor(missing: readonly string[]) {
    super(
      `the native addon ${nativeAddonPath} has no ${missing.join(", ")}: it was built from ` +
        "older sources; rebuild it (cd native && node-gyp rebuild, or delete native/build and " +
        "run scripts/setup.sh)",
    );
    this.name = "NativeAddonOutdated";
    this.missing = missing;
  }
}

/** A message for the "*_ADDON_MISSING" errors of the wrappers. */
export function addonLoadMessage(what: string, cause: unknown): string {
  if (cause instanceof NativeAddonOutdated) return cause.message;
  return `cannot load the native ${what} addon ${nativeAddonPath}: run scripts/setup.sh to build it`;
}
