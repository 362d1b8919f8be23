import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe } from "node:test";
import { FileBackend } from "../../src/storage/backends/file-backend.ts";
import { backendContract } from "../ceph/backend-contract.ts";

describe("file backend contract", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "fips-file-backend-"));
  const backend = new FileBackend({ dir });
  before(() => backend.init());
  after(() => rmSync(dir, { recursive: true, force: true }));
  backendContract(() => backend, "");
});
