/**
 * `floatip volume` and `floatip request` against a real gateway (file backend, loopback): the
 * client token comes from --token-file, FLOATIP_STORAGE_TOKEN or FLOATIP_STORAGE_TOKEN_FILE;
 * without one the CLI says how to give it, with a wrong one the gateway's 401 is printed, a
 * read token cannot change anything, and reads print their result without a record.
 */
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { type Gateway, parseGatewayConfig, startGateway } from "../../src/storage/gateway.ts";
import { StaticClusterView } from "../../src/storage/static-cluster-view.ts";

const main = path.join(import.meta.dirname, "..", "..", "src", "cli", "main.ts");

/** A one-node gateway on loopback (file backend) in `dir`, with `extra` config keys. */
function loopbackConfig(dir: string, extra: Record<string, unknown>) {
  return parseGatewayConfig(
    {
      node: "a",
      keyFile: path.join(dir, "cluster.key"),
      journal: path.join(dir, "a.sqlite"),
      api: { host: "127.0.0.1", port: 0 },
      peer: { host: "127.0.0.1", port: 0 },
      backend: { kind: "file", dir: path.join(dir, "volumes") },
      ...extra,
    },
    "test",
  );
}

describe("storage CLI credentials", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "fips-storage-cli-"));
  const writeFile = path.join(dir, "rw.token");
  const readFile = path.join(dir, "ro.token");
  const readToken = randomBytes(12).toString("hex");
  let gateway: Gateway | undefined;

  const cli = (args: string[], env: Record<string, string> = {}) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const clean = { ...process.env };
      delete clean.FLOATIP_STORAGE_TOKEN;
      delete clean.FLOATIP_STORAGE_TOKEN_FILE;
      execFile(
        process.execPath,
        [main, ...args, "--url", gateway!.apiUrl],
        { env: { ...clean, ...env }, timeout: 30_000 },
        (error, stdout, stderr) =>
          resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      );
    });

  before(async () => {
    writeFileSync(path.join(dir, "cluster.key"), randomBytes(32), { mode: 0o600 });
    writeFileSync(writeFile, `${randomBytes(12).toString("hex")}\n`, { mode: 0o600 });
    writeFileSync(readFile, `${readToken}\n`, { mode: 0o600 });
    const config = loopbackConfig(dir, {
      clients: [
        { name: "ops", tokenFile: writeFile, access: "write" },
        { name: "watch", tokenFile: readFile, access: "read" },
      ],
    });
    gateway = await startGateway(config, new StaticClusterView("a"));
  });
  after(async () => {
    await gateway?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends the token from --token-file, the environment or an environment file", async () => {
    const none = await cli(["volume", "ls"]);
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /needs a client token: --token-file FILE, FLOATIP_STORAGE_TOKEN/);

    const wrong = await cli(["volume", "ls"], { FLOATIP_STORAGE_TOKEN: "not-a-token" });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /UNAUTHENTICATED/);

    const created = await cli([
      "volume",
      "create",
      "v1",
      "--size",
      "1M",
      "--wait",
      "--token-file",
      writeFile,
      "--request-id",
      "cli-1",
    ]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /v1 1048576 bytes/);

    const listed = await cli(["volume", "ls"], { FLOATIP_STORAGE_TOKEN_FILE: readFile });
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^v1 1048576 bytes$/m);
    assert.equal(gateway!.dispatcher.counts().total, 1, "the read kept no record");

    const refused = await cli(["volume", "rm", "v1", "--wait"], {
      FLOATIP_STORAGE_TOKEN: readToken,
    });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /FORBIDDEN/);

    // Only its submitter sees a record.
    const mine = await cli(["request", "show", "cli-1", "--token-file", writeFile]);
    assert.equal(mine.code, 0, mine.stderr);
    assert.match(mine.stdout, /cli-1: succeeded/);
    const theirs = await cli(["request", "show", "cli-1", "--token-file", readFile]);
    assert.equal(theirs.code, 1);
    assert.match(theirs.stderr, /NOT_FOUND/);

    const missing = await cli(["volume", "ls", "--token-file", path.join(dir, "absent")]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read the storage token file .*absent \(ENOENT\)/);
  });
  it("on a real socket: 401 before a body is read, 413 for a body over 1 MiB", async () => {
    const { port } = new URL(gateway!.apiUrl);
    const raw = (request: string | Buffer) =>
      new Promise<{ text: string; ms: number }>((resolve) => {
        const started = Date.now();
        const socket = connect({ host: "127.0.0.1", port: Number(port) });
        let text = "";
        socket.on("data", (d) => (text += d));
        socket.on("error", () => undefined);
        socket.on("close", () => resolve({ text, ms: Date.now() - started }));
        socket.on("connect", () => socket.write(request));
        setTimeout(() => socket.destroy(), 100_000).unref();
      });
    const head = (token: string | undefined, length: number) =>
      [
        "POST /v1/volumes HTTP/1.1",
        "Host: x",
        "Content-Type: application/json",
        `Content-Length: ${length}`,
        ...(token ? [`Authorization: Bearer ${token}`] : []),
        "Connection: close",
        "",
        "",
      ].join("\r\n");
    // 2 MiB announced, nothing of it sent: refused on the headers alone.
    const anonymous = await raw(head(undefined, 2 * 1024 * 1024));
    assert.match(anonymous.text, /^HTTP\/1\.1 401 /);
    assert.match(anonymous.text, /"code":"UNAUTHENTICATED"/);
    const token = readFileSync(writeFile, "utf8").trim();
    const body = Buffer.alloc(2 * 1024 * 1024, 0x20);
    const tooLarge = await raw(Buffer.concat([Buffer.from(head(token, body.length)), body]));
    assert.match(tooLarge.text, /^HTTP\/1\.1 413 /);
    assert.match(tooLarge.text, /"code":"PAYLOAD_TOO_LARGE"/);
  });
});

describe("storage client API over TLS", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "fips-storage-tls-"));
  const cert = path.join(dir, "gw.crt");
  const key = path.join(dir, "gw.key");
  const tokenFile = path.join(dir, "rw.token");
  let gateway: Gateway | undefined;
  const config = (keyFile: string) =>
    loopbackConfig(dir, {
      clients: [{ name: "ops", tokenFile, access: "write" }],
      tls: { certFile: cert, keyFile },
    });

  before(async () => {
    writeFileSync(path.join(dir, "cluster.key"), randomBytes(32), { mode: 0o600 });
    writeFileSync(tokenFile, "tls-token\n", { mode: 0o600 });
    const made = spawnSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "2",
        "-subj",
        "/CN=floatip-test",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ],
      { encoding: "utf8", timeout: 20_000 },
    );
    assert.equal(made.status, 0, made.stderr);
    chmodSync(key, 0o600);
    gateway = await startGateway(config(key), new StaticClusterView("a"));
  });
  after(async () => {
    await gateway?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves HTTPS only, to a client that trusts its certificate", async () => {
    const url = gateway!.apiUrl;
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const run = (env: Record<string, string>) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [main, "volume", "ls", "--url", url, "--token-file", tokenFile],
          { env: { ...process.env, ...env }, timeout: 30_000 },
          (error, stdout, stderr) =>
            resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
        );
      });
    const trusted = await run({ NODE_EXTRA_CA_CERTS: cert });
    assert.equal(trusted.code, 0, trusted.stderr);
    const untrusted = await run({});
    assert.notEqual(untrusted.code, 0, "a client that does not trust the certificate fails");
    assert.match(untrusted.stderr, /not trusted here \(NODE_EXTRA_CA_CERTS=FILE/);
    // Plain HTTP to the TLS port gets no API answer.
    const plain = await fetch(`${url.replace("https:", "http:")}/v1/volumes`, {
      headers: { authorization: "Bearer tls-token" },
      signal: AbortSignal.timeout(5000),
    }).then(
      (r) => r.status,
      () => "refused",
    );
    assert.ok(plain === "refused" || plain === 400, String(plain));
  });

  it("refuses a TLS key that group or others may read", async () => {
    const open = path.join(dir, "open.key");
    writeFileSync(open, readFileSync(key), { mode: 0o644 });
    chmodSync(open, 0o644);
    await assert.rejects(
      startGateway(config(open), new StaticClusterView("b")),
      /accessible by group or others \(mode 0644\): chmod 600/,
    );
  });
});
