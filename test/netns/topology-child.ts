/**
 * Child of `topology-cleanup.test.ts`: builds a topology with the prefix and hosts given on
 * the command line and waits. It prints `building` right before it starts, so the parent can
 * send SIGTERM at a chosen moment of the build, and `built` when the build is done.
 */
import { createTopology } from "../../src/lab/topology.ts";

const [prefix, ...hosts] = process.argv.slice(2);
if (!prefix || hosts.length === 0) {
  console.error("usage: topology-child.ts PREFIX HOST...");
  process.exit(2);
}
process.stdout.write("building\n");
await createTopology({ prefix, hosts });
process.stdout.write("built\n");
// Bounded: the parent ends it long before.
setTimeout(() => process.exit(0), 30_000);
