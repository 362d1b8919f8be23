/**
 * `node:http` and `node:https` without their ES-module facade. An `import … from "node:http"`
 * makes Node.js evaluate every export of the module to build the facade, and on Node.js 22+
 * that includes the lazy `WebSocket`/`EventSource` getters, which load undici: about 14 MB of
 * RSS in a process that never uses them (measured on Node.js 24: 60 MB against 46 MB for a
 * bare process that only loads http). The control plane loads http for its health probes and
 * runs for months; `require` loads the module alone. Type-only imports of these modules are
 * erased and stay as they are.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

export const http = require("node:http") as typeof import("node:http");
export const https = require("node:https") as typeof import("node:https");
