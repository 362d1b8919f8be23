/** The backend contract (backend-contract.ts) against a real single-node Ceph cluster. */
import { after, describe } from "node:test";
import { RbdBackend } from "../../src/storage/backends/rbd-backend.ts";
import { backendContract } from "./backend-contract.ts";
import { startCephCluster } from "./ceph-cluster.ts";

const cluster = startCephCluster();

describe("rbd backend contract (real Ceph)", {
  skip: typeof cluster === "string" ? cluster : false,
}, () => {
  if (typeof cluster === "string") return;
  after(() => cluster.stop());
  const backend = new RbdBackend({ pool: "rbd", cephConf: cluster.conf, timeoutMs: 20_000 });
  backendContract(() => backend, "c-");
});
