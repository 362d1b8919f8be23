// npm's `install` step of the floatip package: builds the native addon and the C supervisor
// (native/, node-gyp, which npm puts on PATH for install scripts) against the Node.js that
// runs the install. In a source checkout it does nothing: scripts/setup.sh builds native/
// there, against the Node 24 it fetches.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
if (existsSync(join(root, "src")) && existsSync(join(root, ".git"))) process.exit(0);

const major = Number(process.versions.node.split(".")[0]);
if (major < 22) {
  console.error(
    `floatip needs Node.js 22 or newer to run (this is ${process.version}); the package is installed, but run it with a newer node (FLOATIP_NODEJS=/path/to/node).`,
  );
}
const gyp = process.platform === "win32" ? "node-gyp.cmd" : "node-gyp";
const result = spawnSync(gyp, ["rebuild"], {
  cwd: join(root, "native"),
  stdio: "inherit",
  timeout: 600_000,
});
if (result.status !== 0) {
  const why = result.error ? ` (${result.error.message})` : "";
  console.error(
    `floatip: building the native addon failed${why}. It needs python3, make and a C compiler: on Debian, apt-get install python3 make gcc, then npm rebuild -g floatip. Without it the agent cannot send ARP or manage addresses.`,
  );
  process.exit(1);
}
