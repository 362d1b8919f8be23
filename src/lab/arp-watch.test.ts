import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { analyzeArpWatch } from "./arp-watch.ts";

const names = new Map([
  ["02:00:00:00:00:01", "n1"],
  ["02:00:00:00:00:02", "n2"],
]);
const vip = "198.18.5.100";

describe("ARP watch analysis", () => {
  it("attributes late replies to their round and finds two answerers in one round", () => {
    const text = [
      "S 0 1000000",
      `A 0 ${vip} 02:00:00:00:00:01 1000200`,
      "S 1 1005000",
      // Round 0's second answer arrives after round 1 went out: still round 0.
      `A 0 ${vip} 02:00:00:00:00:02 1005100`,
      `A 1 ${vip} 02:00:00:00:00:02 1005300`,
      "",
    ].join("\n");
    const report = analyzeArpWatch(text, [vip], names);
    assert.equal(report.rounds, 2);
    assert.deepEqual(report.doubles, [{ round: 0, at: 1000, vip, by: ["n1", "n2"] }]);
    assert.deepEqual(report.answerers.get(vip), ["n1", "n2"]);
  });

  it("measures unanswered runs from the first silent round to the next answered one", () => {
    const text = [
      "S 0 1000000",
      `A 0 ${vip} 02:00:00:00:00:01 1000100`,
      "S 1 1005000",
      "S 2 1010000",
      "S 3 1015000",
      `A 3 ${vip} 02:00:00:00:00:02 1015100`,
      "S 4 1020000",
      "S 5 1025000",
      "E send: No buffer space available",
    ].join("\n");
    const report = analyzeArpWatch(text, [vip, "198.18.5.101"], names);
    assert.deepEqual(report.gaps, [{ vip, from: 1005, to: 1015, ms: 10 }]);
    assert.equal(report.longestGapMs.get(vip), 10);
    assert.equal(report.unansweredAtEnd.get(vip), 2);
    assert.equal(report.unansweredAtEnd.get("198.18.5.101"), 6);
    assert.deepEqual(report.doubles, []);
    assert.deepEqual(report.errors, ["send: No buffer space available"]);
    // An unknown MAC is reported as itself.
    const other = analyzeArpWatch(`S 0 1\nA 0 ${vip} 02:aa:00:00:00:09 2\n`, [vip], names);
    assert.deepEqual(other.answerers.get(vip), ["02:aa:00:00:00:09"]);
  });
});
