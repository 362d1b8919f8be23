import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseHostPort, parsePort, splitHostPort } from "./host-port.ts";

describe("host and port", () => {
  it("splits host and port, brackets for IPv6, the port optional", () => {
    assert.deepEqual(splitHostPort("198.18.0.1:7946"), {
      host: "198.18.0.1",
      port: "7946",
      bracketed: false,
    });
    assert.deepEqual(splitHostPort("[2001:db8::1]:80"), {
      host: "2001:db8::1",
      port: "80",
      bracketed: true,
    });
    assert.deepEqual(splitHostPort("[2001:db8::1]"), { host: "2001:db8::1", bracketed: true });
    assert.deepEqual(splitHostPort("node-a"), { host: "node-a", bracketed: false });
    // More than one colon outside brackets: an IPv6 address, never host ::1 and port 80.
    assert.deepEqual(splitHostPort("::1:80"), { host: "::1:80", bracketed: false });
  });

  it("takes ports 1-65535 written plainly", () => {
    assert.equal(parsePort("1"), 1);
    assert.equal(parsePort("65535"), 65535);
    for (const bad of ["0", "65536", "080", "-1", "+80", "8o", "", " 80", "123456"]) {
      assert.equal(parsePort(bad), undefined, bad);
    }
  });

  it("needs both parts for HOST:PORT (the CLI's --api)", () => {
    assert.deepEqual(parseHostPort("127.0.0.1:7480"), { host: "127.0.0.1", port: 7480 });
    assert.deepEqual(parseHostPort(" [::1]:80 "), { host: "::1", port: 80 });
    assert.deepEqual(parseHostPort("agent.local:1"), { host: "agent.local", port: 1 });
    const bad = ["127.0.0.1", ":80", "[]:80", "host:", "[::1]", "::1:80", "a:b:80", ""];
    for (const text of [...bad, "host:0", "host:65536", "host:port"]) {
      assert.equal(parseHostPort(text), undefined, text);
    }
  });
});
