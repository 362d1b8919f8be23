/**
 * The `rbd` backend: drives a Ceph cluster through the `rbd` command-line client (S1: "the
 * storage node drives the distributed block-storage cluster through its rbd client").
 *
 * Every call goes through `run()` under `timeoutMs`: `rbd rm` of an image another client holds
 * locked never returns, so a timeout is the defined outcome TIMEOUT (the request becomes
 * `outcome_unknown` and is re-driven), never a hang. Read commands use `--format json`; those that draw a
 * progress bar get `--no-progress`. Exit codes are negated errnos, mapped to the stable codes of backend.ts.
 *
 * copy is made atomic by copying to a temporary name and renaming (`rbd mv`), so an image under
 * its final name is complete. Snapshots are protected before cloning and unprotected before
 * removal (format-1 clones require it; a snapshot with children stays BUSY).
 */
import { ExecError, run } from "../../adapters/exec.ts";
import { StorageError } from "../errors.ts";
import type { SnapshotInfo, StorageBackend, VolumeInfo } from "./backend.ts";

export interface RbdBackendOptions {
  readonly pool: string;
  /** Ceph client id (`--id`, e.g. "admin" or "floatip"); default: the client's default. */
  readonly clientId?: string;
  /** Path of ceph.conf (`--conf`); default: the client's default (/etc/ceph/ceph.conf). */
  readonly cephConf?: string;
  /** Deadline of every single rbd command. */
  readonly timeoutMs: number;
  /** The rbd executable (default "rbd"). */
  readonly rbdPath?: string;
  /** The ceph executable for fencing (default "ceph"). */
  readonly cephPath?: string;
}

/**
 * How long a fence lasts unless the fenced node lifts it first (it does once it knows it
 * holds nothing and runs nothing): long enough that a node paused for a long time still finds
 * its late command refused.
 */
export const fenceExpirySeconds = 3600;

const progressCommands = new Set(["create", "rm", "resize", "cp", "snap create", "snap rm"]);

const errnoCodes: Record<number, StorageError["code"]> = {
  2: "NOT_FOUND", // ENOENT
  16: "BUSY", // EBUSY: watchers, protected snapshot
  17: "EXISTS", // EEXIST
  39: "BUSY", // ENOTEMPTY: image has snapshots
  108: "FENCED", // ESHUTDOWN: this client's address is on the OSD blocklist
};

/** Suffix of an image being made (renamed to its final name when complete). */
const partialSuffix = ".floatip-partial";
/** Image metadata key holding the id of the request that made the image. */
const creatorKey = "floatip.request";
/** Image metadata key holding the id of the request that made snapshot `snapshot`. */
const snapCreatorKey = (snapshot: string) => `floatip.snap.${snapshot}`;

export class RbdBackend implements StorageBackend {
  readonly kind = "rbd";
  readonly #options: RbdBackendOptions;

  constructor(options: RbdBackendOptions) {
    this.#options = options;
  }

  #spec(name: string, snapshot?: string): string {
    return `${this.#options.pool}/${name}${snapshot === undefined ? "" : `@${snapshot}`}`;
  }

  async #rbd(args: readonly string[], what: string): Promise<string> {
    // Only the commands that draw a progress bar accept --no-progress (others refuse it).
    const progress = progressCommands.has(args[0] === "snap" ? `snap ${args[1]}` : (args[0] ?? ""));
    return this.#run(
      this.#options.rbdPath ?? "rbd",
      progress ? [...args, "--no-progress"] : args,
      what,
    );
  }

  /** One rbd or ceph command with the client id and conf, under the backend's deadline. */
  async #run(binary: string, args: readonly string[], what: string): Promise<string> {
    const common: string[] = [];
    if (this.#options.clientId) common.push("--id", this.#options.clientId);
    if (this.#options.cephConf) common.push("--conf", this.#options.cephConf);
    try {
      const result = await run(binary, [...args, ...common], {
        timeoutMs: this.#options.timeoutMs,
        // A gateway killed with its agent must not leave an rbd call running beside the
        // new holder's re-drive of the same request (and holding the image's lock).
        dieWithParent: true,
      });
      return result.stdout;
    } catch (error) {
      throw mapError(error, what);
    }
  }

  /** A `ceph` command (fencing), under the same deadline as rbd's. */
  #ceph(args: readonly string[], what: string): Promise<string> {
    return this.#run(this.#options.cephPath ?? "ceph", args, what);
  }

  /**
   * Blocklists every client at `address` (`ceph osd blocklist add ADDRESS:0/0`): the OSDs
   * refuse its operations, a command already under way included, and drop its watches. The
   * monitors still answer it, so the fenced node can lift its own fence later.
   */
  async fence(address: string): Promise<void> {
    await this.#ceph(
      ["osd", "blocklist", "add", `${address}:0/0`, String(fenceExpirySeconds)],
      `fence ${address}`,
    );
  }

  async unfence(address: string): Promise<boolean> {
    const listed = await this.#ceph(["osd", "blocklist", "ls"], "list the blocklist");
    const entry = `${address}:0/0`;
    if (!listed.split("\n").some((line) => line.split(/\s+/)[0] === entry)) return false;
    await this.#ceph(["osd", "blocklist", "rm", entry], `unfence ${address}`);
    return true;
  }

  async #json(args: readonly string[], what: string): Promise<unknown> {
    const stdout = await this.#rbd([...args, "--format", "json"], what);
    try {
      return JSON.parse(stdout === "" ? "null" : stdout);
    } catch (error) {
      throw new StorageError("BACKEND_ERROR", `${what}: unreadable rbd output`, { cause: error });
    }
  }

  async create(name: string, sizeBytes: number, requestId?: string): Promise<VolumeInfo> {
    if (requestId === undefined) {
      await this.#rbd(["create", "--size", `${sizeBytes}B`, this.#spec(name)], `create ${name}`);
      return { name, sizeBytes };
    }
    await this.#claim(name, requestId, (partial) =>
      this.#rbd(["create", "--size", `${sizeBytes}B`, this.#spec(partial)], `create ${name}`),
    );
    return { name, sizeBytes };
  }

  /**
   * Makes `name` under a name of its own (`NAME.floatip-partial`), records `requestId` in the
   * image's metadata (key floatip.request), then renames it to `name`: the rename is the claim,
   * so an image under its final name always carries the id of the request that made it, and a
   * request that finds the name taken made nothing (EXISTS). A partial image left by a crash
   * is incomplete by construction and removed first.
   */
  async #claim(
    name: string,
    requestId: string | undefined,
    make: (partial: string) => Promise<unknown>,
  ): Promise<void> {
    if (await this.#exists(name)) throw new StorageError("EXISTS", `volume ${name} exists`);
    const partial = `${name}${partialSuffix}`;
    await this.remove(partial).catch((error: unknown) => {
      if (!(error instanceof StorageError && error.code === "NOT_FOUND")) throw error;
    });
    await make(partial);
    if (requestId !== undefined) {
      await this.#rbd(
        ["image-meta", "set", this.#spec(partial), creatorKey, requestId],
        `record the request of ${name}`,
      );
    }
    try {
      await this.#rbd(["mv", this.#spec(partial), this.#spec(name)], `rename to ${name}`);
    } catch (error) {
      await this.remove(partial).catch(() => undefined);
      throw error;
    }
  }

  async creatorOf(name: string): Promise<string | undefined> {
    try {
      const value = await this.#rbd(
        ["image-meta", "get", this.#spec(name), creatorKey],
        `request of ${name}`,
      );
      return value.trim() || undefined;
    } catch (error) {
      if (error instanceof StorageError && error.code === "NOT_FOUND") return undefined;
      throw error;
    }
  }

  async remove(name: string): Promise<void> {
    await this.#rbd(["rm", this.#spec(name)], `remove ${name}`);
  }

  async list(): Promise<VolumeInfo[]> {
    const rows = await this.#json(["ls", "-l", this.#options.pool], "list");
    if (!Array.isArray(rows)) return [];
    return rows
      .filter(
        (row: Record<string, unknown>) =>
          row.snapshot === undefined && !String(row.image).endsWith(partialSuffix),
      )
      .map((row: Record<string, unknown>) => volumeFrom(String(row.image), row));
  }

  async info(name: string): Promise<VolumeInfo> {
    const row = (await this.#json(["info", this.#spec(name)], `info ${name}`)) as Record<
      string,
      unknown
    >;
    return volumeFrom(name, row);
  }

  async resize(name: string, sizeBytes: number): Promise<VolumeInfo> {
    await this.#rbd(
      ["resize", "--size", `${sizeBytes}B`, "--allow-shrink", this.#spec(name)],
      `resize ${name}`,
    );
    return this.info(name);
  }

  async copy(source: string, target: string, requestId?: string): Promise<VolumeInfo> {
    await this.#claim(target, requestId, (partial) =>
      this.#rbd(["cp", this.#spec(source), this.#spec(partial)], `copy ${source}`),
    );
    return this.info(target);
  }

  async #exists(name: string): Promise<boolean> {
    try {
      await this.info(name);
      return true;
    } catch (error) {
      if (error instanceof StorageError && error.code === "NOT_FOUND") return false;
      throw error;
    }
  }

  /**
   * With `requestId`: the id is recorded first in the image's metadata under
   * `floatip.snap.SNAPSHOT`, then the snapshot is made, so a snapshot under its name always
   * carries the id of the request that made it. Only the storage VIP's holder runs requests,
   * one at a time, and a failed holder is fenced: no other request writes that key meanwhile.
   * A key left by a crash between the two steps names a snapshot that does not exist, and is
   * overwritten by the next request for that name.
   */
  async snapCreate(name: string, snapshot: string, requestId?: string): Promise<SnapshotInfo> {
    if (requestId !== undefined) {
      if ((await this.snapList(name)).some((s) => s.snapshot === snapshot)) {
        throw new StorageError("EXISTS", `snapshot ${name}@${snapshot} exists`);
      }
      await this.#rbd(
        ["image-meta", "set", this.#spec(name), snapCreatorKey(snapshot), requestId],
        `record the request of ${name}@${snapshot}`,
      );
    }
    await this.#rbd(["snap", "create", this.#spec(name, snapshot)], `snapshot ${name}`);
    const found = (await this.snapList(name)).find((s) => s.snapshot === snapshot);
    if (!found) throw new StorageError("BACKEND_ERROR", `snapshot ${name}@${snapshot} vanished`);
    return found;
  }

  async snapCreatorOf(name: string, snapshot: string): Promise<string | undefined> {
    if (!(await this.snapList(name).catch(() => [])).some((s) => s.snapshot === snapshot)) {
      return undefined;
    }
    try {
      const value = await this.#rbd(
        ["image-meta", "get", this.#spec(name), snapCreatorKey(snapshot)],
        `request of ${name}@${snapshot}`,
      );
      return value.trim() || undefined;
    } catch (error) {
      if (error instanceof StorageError && error.code === "NOT_FOUND") return undefined;
      throw error;
    }
  }

  async snapList(name: string): Promise<SnapshotInfo[]> {
    const rows = await this.#json(["snap", "ls", this.#spec(name)], `snapshots of ${name}`);
    if (!Array.isArray(rows)) return [];
    return rows.map((row: Record<string, unknown>) => ({
      name,
      snapshot: String(row.name),
      sizeBytes: Number(row.size),
    }));
  }

  async snapRemove(name: string, snapshot: string): Promise<void> {
    const spec = this.#spec(name, snapshot);
    try {
      await this.#rbd(["snap", "unprotect", spec], `unprotect ${spec}`);
    } catch (error) {
      // EINVAL: it was not protected. Anything else (children: BUSY; absent: NOT_FOUND) stands.
      if (!(error instanceof StorageError && error.code === "BACKEND_ERROR")) throw error;
    }
    await this.#rbd(["snap", "rm", spec], `remove snapshot ${spec}`);
    await this.#rbd(
      ["image-meta", "remove", this.#spec(name), snapCreatorKey(snapshot)],
      `forget the request of ${spec}`,
    ).catch(() => undefined);
  }

  async clone(
    name: string,
    snapshot: string,
    target: string,
    requestId?: string,
  ): Promise<VolumeInfo> {
    const spec = this.#spec(name, snapshot);
    try {
      await this.#rbd(["snap", "protect", spec], `protect ${spec}`);
    } catch (error) {
      // EBUSY: already protected, which is what we want.
      if (!(error instanceof StorageError && error.code === "BUSY")) throw error;
    }
    await this.#claim(target, requestId, (partial) =>
      this.#rbd(["clone", spec, this.#spec(partial)], `clone ${spec}`),
    );
    return this.info(target);
  }
}

function volumeFrom(name: string, row: Record<string, unknown> | null): VolumeInfo {
  const sizeBytes = Number(row?.size);
  const parent = row?.parent as Record<string, unknown> | undefined;
  if (parent && typeof parent.image === "string") {
    return { name, sizeBytes, parent: `${parent.image}@${String(parent.snapshot)}` };
  }
  return { name, sizeBytes };
}

function mapError(error: unknown, what: string): StorageError {
  if (!(error instanceof ExecError)) {
    return new StorageError("BACKEND_ERROR", `${what}: ${String(error)}`, { cause: error });
  }
  if (error.code === "EXEC_TIMEOUT") {
    return new StorageError("TIMEOUT", `${what}: rbd did not answer in time`, { cause: error });
  }
  const code = (error.exitCode !== null && errnoCodes[error.exitCode]) || "BACKEND_ERROR";
  const detail = error.stderr.trim().split("\n").slice(-1)[0] ?? "";
  return new StorageError(code, `${what}: ${detail || error.message}`, { cause: error });
}
