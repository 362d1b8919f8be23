/**
 * Exactly-once in effect for creates, as a property over interleavings: two clients create
 * the same volume (same size, their own request ids); either client's first attempt may make
 * the volume and then lose its result in a failover (the new holder re-drives it), and the
 * attempts run in any order the holders allow. Whatever the order, exactly one request ends
 * `succeeded`, and it is the one whose id the volume carries. Each attempt is resolved as the
 * dispatcher does it (perform, observe on EXISTS, resolveOutcome), on the real file backend.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import {
  type ObservedVolume,
  type Operation,
  observationFor,
  type RequestState,
  resolveOutcome,
} from "../../src/core/requests/request-record.ts";
import { FileBackend } from "../../src/storage/backends/file-backend.ts";
import { perform } from "../../src/storage/dispatcher.ts";

const dir = mkdtempSync(join(tmpdir(), "floatip-exactly-once-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const operation: Operation = { op: "create", name: "vol-001", sizeBytes: 1024 * 1024 };

async function attempt(
  backend: FileBackend,
  id: string,
  reDrive: boolean,
  number: number,
): Promise<RequestState> {
  const outcome = await perform(backend, operation, id);
  const observed = new Map<string, ObservedVolume | undefined>();
  for (const name of observationFor(operation, outcome)) {
    const info = await backend.info(name).catch(() => undefined);
    const createdBy = await backend.creatorOf(name);
    observed.set(name, info && { ...info, ...(createdBy ? { createdBy } : {}) });
  }
  return resolveOutcome(operation, { node: "n", attempt: number, reDrive }, outcome, observed, id);
}

describe("storage: exactly one create succeeds", () => {
  it("two clients, lost results and re-drives in any order", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.boolean(),
        fc.array(fc.nat(), { minLength: 4, maxLength: 4 }),
        async (lostA, lostB, keys) => {
          const backend = new FileBackend({ dir: join(dir, `r${run++}`) });
          await backend.init();
          // Each request: a first attempt, and a re-drive when the first one's result was lost.
          const steps: { id: string; reDrive: boolean }[] = [{ id: "a", reDrive: false }];
          if (lostA) steps.push({ id: "a", reDrive: true });
          steps.push({ id: "b", reDrive: false });
          if (lostB) steps.push({ id: "b", reDrive: true });
          // Any interleaving that keeps each request's own attempts in order.
          const order = steps
            .map((step, i) => ({ step, key: keys[i] ?? 0, i }))
            .sort((x, y) => x.key - y.key || x.i - y.i);
          const seen = new Map<string, number>();
          const sorted = order.map((o) => o.step);
          const final = new Map<string, RequestState>();
          // The interleaving decides only whose turn it is; each request runs its own
          // attempts in order (first attempt, then its re-drive).
          const queues = new Map<string, { id: string; reDrive: boolean }[]>([
            ["a", steps.filter((s) => s.id === "a")],
            ["b", steps.filter((s) => s.id === "b")],
          ]);
          for (const { id } of sorted) {
            const next = queues.get(id)!.shift()!;
            const n = (seen.get(id) ?? 0) + 1;
            seen.set(id, n);
            final.set(id, await attempt(backend, id, next.reDrive, n));
          }
          const winners = [...final].filter(([, s]) => s.state === "succeeded").map(([id]) => id);
          assert.equal(winners.length, 1, JSON.stringify([...final]));
          assert.equal(await backend.creatorOf(operation.name), winners[0]);
        },
      ),
      { numRuns: 60 },
    );
  });
});
