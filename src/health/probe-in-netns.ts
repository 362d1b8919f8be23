/**
 * Helper process for `probe()` with a network namespace: started by `ip netns exec NS node
 * probe-in-netns.ts`, it reads one probe spec as JSON on stdin, probes from inside the namespace
 * and prints the result as JSON on stdout. Not a user-facing command.
 */
import { text } from "node:stream/consumers";
import { probe } from "./probes.ts";

const spec = JSON.parse(await text(process.stdin));
const result = await probe(spec);
process.stdout.write(`${JSON.stringify(result)}\n`);
