/**
 * The `file` backend: volumes are sparse files in one directory, the embedded default for a
 * single machine and for tests (several gateways sharing one directory stand in for a shared
 * Ceph cluster). Layout under `dir`:
 *   volumes/NAME.img           the volume (sparse)
 *   volumes/NAME.parent        "VOLUME@SNAPSHOT" for clones
 *   snapshots/NAME/SNAP.img    a snapshot (a sparse copy)
 *   tmp/                       images being built; linked to their final name when complete
 *
 * Atomicity: an image is built under tmp/ and then hard-linked to its final name (`link` fails
 * with EEXIST instead of overwriting), so a crash leaves either no image or a complete one.
 * Semantics follow rbd: a volume with snapshots cannot be removed (BUSY), a snapshot with clones
 * cannot be removed (BUSY).
 */
import { randomUUID } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { StorageError } from "../errors.ts";
import type { SnapshotInfo, StorageBackend, VolumeInfo } from "./backend.ts";

export interface FileBackendOptions {
  readonly dir: string;
  /**
   * Added before every mutating operation to emulate a remote cluster's latency (demo and
   * failover drills); 0 in normal use.
   */
  readonly operationDelayMs?: number;
}

const copyChunkBytes = 1024 * 1024;

function errno(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

export class FileBackend implements StorageBackend {
  readonly kind = "file";
  readonly #dir: string;
  readonly #delayMs: number;

  constructor(options: FileBackendOptions) {
    this.#dir = path.resolve(options.dir);
    this.#delayMs = options.operationDelayMs ?? 0;
  }

  /** Creates the directory layout; call once before use. */
  async init(): Promise<void> {
    for (const sub of ["volumes", "snapshots", "tmp", "creators"]) {
      await fs.mkdir(path.join(this.#dir, sub), { recursive: true });
    }
  }

  #volume(name: string): string {
    return path.join(this.#dir, "volumes", `${name}.img`);
  }
  #creatorFile(inode: number | bigint): string {
    return path.join(this.#dir, "creators", String(inode));
  }
  #parentFile(name: string): string {
    return path.join(this.#dir, "volumes", `${name}.parent`);
  }
  #snapDir(name: string): string {
    return path.join(this.#dir, "snapshots", name);
  }
  #snap(name: string, snapshot: string): string {
    return path.join(this.#snapDir(name), `${snapshot}.img`);
  }

  async #delay(): Promise<void> {
    if (this.#delayMs > 0) await sleep(this.#delayMs);
  }

  async #sizeOf(file: string, what: string): Promise<number> {
    try {
      return (await fs.stat(file)).size;
    } catch (error) {
      if (errno(error) === "ENOENT") throw new StorageError("NOT_FOUND", `${what} does not exist`);
      throw new StorageError("BACKEND_ERROR", `stat ${what}: ${String(error)}`, { cause: error });
    }
  }

  /**
   * Builds a file in tmp/ with `fill`, then links it to `final` atomically (EXISTS if taken).
   * With `requestId`, the request is recorded as the file's maker first, under the file's
   * inode (creators/INODE): the inode the link gives the final name, so a request whose link
   * lost never overwrites the winner's record.
   */
  async #publish(
    final: string,
    what: string,
    fill: (tmp: string) => Promise<void>,
    requestId?: string,
  ): Promise<void> {
    const tmp = path.join(this.#dir, "tmp", randomUUID());
    try {
      await fill(tmp);
      const handle = await fs.open(tmp, "r+");
      try {
        await handle.sync();
        if (requestId !== undefined) {
          const { ino } = await handle.stat();
          await fs.writeFile(this.#creatorFile(ino), requestId);
          await syncDir(path.join(this.#dir, "creators"));
        }
      } finally {
        await handle.close();
      }
      try {
        await fs.link(tmp, final);
      } catch (error) {
        if (errno(error) === "EEXIST") throw new StorageError("EXISTS", `${what} already exists`);
        throw error;
      }
      await syncDir(path.dirname(final));
    } catch (error) {
      if (error instanceof StorageError) throw error;
      throw new StorageError("BACKEND_ERROR", `${what}: ${String(error)}`, { cause: error });
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  async create(name: string, sizeBytes: number, requestId?: string): Promise<VolumeInfo> {
    await this.#delay();
    await this.#publish(
      this.#volume(name),
      `volume ${name}`,
      async (tmp) => {
        await fs.writeFile(tmp, "", { flag: "wx" });
        await fs.truncate(tmp, sizeBytes);
      },
      requestId,
    );
    return { name, sizeBytes };
  }

  async creatorOf(name: string): Promise<string | undefined> {
    let inode: number;
    try {
      inode = (await fs.stat(this.#volume(name))).ino;
    } catch {
      return undefined;
    }
    return fs.readFile(this.#creatorFile(inode), "utf8").catch(() => undefined);
  }

  async remove(name: string): Promise<void> {
    await this.#delay();
    await this.#sizeOf(this.#volume(name), `volume ${name}`);
    if ((await this.snapList(name)).length > 0) {
      throw new StorageError("BUSY", `volume ${name} has snapshots`);
    }
    const inode = (await fs.stat(this.#volume(name)).catch(() => undefined))?.ino;
    try {
      await fs.unlink(this.#volume(name));
    } catch (error) {
      if (errno(error) === "ENOENT")
        throw new StorageError("NOT_FOUND", `volume ${name} does not exist`);
      throw new StorageError("BACKEND_ERROR", `remove ${name}: ${String(error)}`, { cause: error });
    }
    await fs.rm(this.#parentFile(name), { force: true });
    await fs.rm(this.#snapDir(name), { recursive: true, force: true });
    if (inode !== undefined) await fs.rm(this.#creatorFile(inode), { force: true });
  }

  async list(): Promise<VolumeInfo[]> {
    const entries = await fs.readdir(path.join(this.#dir, "volumes"));
    const volumes: VolumeInfo[] = [];
    for (const entry of entries.sort()) {
      if (!entry.endsWith(".img")) continue;
      const name = entry.slice(0, -".img".length);
      try {
        volumes.push(await this.info(name));
      } catch (error) {
        // Removed between readdir and stat: not part of the list.
        if (!(error instanceof StorageError && error.code === "NOT_FOUND")) throw error;
      }
    }
    return volumes;
  }

  async info(name: string): Promise<VolumeInfo> {
    const sizeBytes = await this.#sizeOf(this.#volume(name), `volume ${name}`);
    const parent = await fs.readFile(this.#parentFile(name), "utf8").catch(() => undefined);
    return parent ? { name, sizeBytes, parent } : { name, sizeBytes };
  }

  async resize(name: string, sizeBytes: number): Promise<VolumeInfo> {
    await this.#delay();
    await this.#sizeOf(this.#volume(name), `volume ${name}`);
    await fs.truncate(this.#volume(name), sizeBytes);
    return this.info(name);
  }

  async copy(source: string, target: string, requestId?: string): Promise<VolumeInfo> {
    await this.#delay();
    const sizeBytes = await this.#sizeOf(this.#volume(source), `volume ${source}`);
    await this.#publish(
      this.#volume(target),
      `volume ${target}`,
      (tmp) => sparseCopy(this.#volume(source), tmp, sizeBytes),
      requestId,
    );
    return { name: target, sizeBytes };
  }

  async snapCreate(name: string, snapshot: string, requestId?: string): Promise<SnapshotInfo> {
    await this.#delay();
    const sizeBytes = await this.#sizeOf(this.#volume(name), `volume ${name}`);
    await fs.mkdir(this.#snapDir(name), { recursive: true });
    await this.#publish(
      this.#snap(name, snapshot),
      `snapshot ${name}@${snapshot}`,
      (tmp) => sparseCopy(this.#volume(name), tmp, sizeBytes),
      requestId,
    );
    return { name, snapshot, sizeBytes };
  }

  async snapCreatorOf(name: string, snapshot: string): Promise<string | undefined> {
    let inode: number;
    try {
      inode = (await fs.stat(this.#snap(name, snapshot))).ino;
    } catch {
      return undefined;
    }
    return fs.readFile(this.#creatorFile(inode), "utf8").catch(() => undefined);
  }

  async snapList(name: string): Promise<SnapshotInfo[]> {
    await this.#sizeOf(this.#volume(name), `volume ${name}`);
    const entries = await fs.readdir(this.#snapDir(name)).catch(() => [] as string[]);
    const snapshots: SnapshotInfo[] = [];
    for (const entry of entries.sort()) {
      if (!entry.endsWith(".img")) continue;
      const snapshot = entry.slice(0, -".img".length);
      const sizeBytes = await this.#sizeOf(this.#snap(name, snapshot), `snapshot`);
      snapshots.push({ name, snapshot, sizeBytes });
    }
    return snapshots;
  }

  async snapRemove(name: string, snapshot: string): Promise<void> {
    await this.#delay();
    await this.#sizeOf(this.#volume(name), `volume ${name}`);
    const file = this.#snap(name, snapshot);
    await this.#sizeOf(file, `snapshot ${name}@${snapshot}`);
    if (await this.#hasClones(`${name}@${snapshot}`)) {
      throw new StorageError("BUSY", `snapshot ${name}@${snapshot} has clones`);
    }
    const inode = (await fs.stat(file).catch(() => undefined))?.ino;
    try {
      await fs.unlink(file);
      if (inode !== undefined) await fs.rm(this.#creatorFile(inode), { force: true });
    } catch (error) {
      if (errno(error) === "ENOENT") {
        throw new StorageError("NOT_FOUND", `snapshot ${name}@${snapshot} does not exist`);
      }
      throw new StorageError("BACKEND_ERROR", `remove snapshot: ${String(error)}`, {
        cause: error,
      });
    }
  }

  async #hasClones(parent: string): Promise<boolean> {
    const entries = await fs.readdir(path.join(this.#dir, "volumes"));
    for (const entry of entries) {
      if (!entry.endsWith(".parent")) continue;
      const volume = entry.slice(0, -".parent".length);
      const text = await fs
        .readFile(path.join(this.#dir, "volumes", entry), "utf8")
        .catch(() => "");
      const exists = await fs.access(this.#volume(volume), constants.F_OK).then(
        () => true,
        () => false,
      );
      if (text === parent && exists) return true;
    }
    return false;
  }

  async clone(
    name: string,
    snapshot: string,
    target: string,
    requestId?: string,
  ): Promise<VolumeInfo> {
    await this.#delay();
    const source = this.#snap(name, snapshot);
    const sizeBytes = await this.#sizeOf(source, `snapshot ${name}@${snapshot}`);
    const parent = `${name}@${snapshot}`;
    const taken = await fs.access(this.#volume(target), constants.F_OK).then(
      () => true,
      () => false,
    );
    if (taken) throw new StorageError("EXISTS", `volume ${target} already exists`);
    // The parent note is written first: a note without an image is ignored (and replaced).
    await fs.writeFile(this.#parentFile(target), parent).catch((error: unknown) => {
      throw new StorageError("BACKEND_ERROR", `clone ${target}: ${String(error)}`, {
        cause: error,
      });
    });
    await this.#publish(
      this.#volume(target),
      `volume ${target}`,
      (tmp) => sparseCopy(source, tmp, sizeBytes),
      requestId,
    );
    return { name: target, sizeBytes, parent };
  }
}

/** Copies `sizeBytes` of `from` to a new file `to`, skipping zero chunks to keep it sparse. */
async function sparseCopy(from: string, to: string, sizeBytes: number): Promise<void> {
  const input = await fs.open(from, "r");
  const output = await fs.open(to, "wx");
  try {
    const buffer = Buffer.alloc(copyChunkBytes);
    for (let offset = 0; offset < sizeBytes; offset += copyChunkBytes) {
      const { bytesRead } = await input.read(buffer, 0, copyChunkBytes, offset);
      if (bytesRead === 0) break;
      const chunk = buffer.subarray(0, bytesRead);
      if (chunk.some((byte) => byte !== 0)) await output.write(chunk, 0, bytesRead, offset);
    }
    await output.truncate(sizeBytes);
  } finally {
    await input.close();
    await output.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
