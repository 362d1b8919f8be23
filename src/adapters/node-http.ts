/**
 * `node:http` and `node:https` without their ES-module facade, each loaded on first use.
 *
 * The facade: an `import … from "node:http"` makes Node.js evaluate every export of the module
 * to build it, and on Node.js 22+ that includes the lazy `WebSocket`/`EventSource` getters,
 * which load undici: about 14 MB of RSS in a process that never uses them (measured on
 * Node.js 24: 60 MB against 46 MB for a bare process that only loads http). `require` loads
 * the module alone.
 *
 * On first use: the control plane needs them only for `http`/`https` health checks, and runs
 * for months. Loaded at start, the two cost it about 6 MB of RSS (2 MB anonymous, 4 MB of the
 * binary's pages: TLS and the HTTP parser), measured on Node.js 24 with the control plane's
 * other modules loaded. With such a check configured they are loaded when the checks are set
 * up, before the control loop runs (`loadProbeModules` in src/health/probes.ts): loading
 * node:http takes tens of milliseconds. Type-only imports of these modules are erased and
 * stay as they are.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

let httpLoaded: typeof import("node:http") | undefined;
let httpsLoaded: typeof import("node:https") | undefined;

/** `node:http`, loaded on the first call. */
export function httpModule(): typeof import("node:http") {
  httpLoaded ??= require("node:http") as typeof import("node:http");
  return httpLoaded;
}

/** `node:https`, loaded on the first call. */
export function httpsModule(): typeof import("node:https") {
  httpsLoaded ??= require("node:https") as typeof import("node:https");
  return httpsLoaded;
}
