/**
 * The one interface every block-storage backend implements (`file`, `rbd`). The dispatcher is
 * the only caller; it runs one operation at a time per gateway. Every method either resolves or
 * throws a `StorageError` with code NOT_FOUND, EXISTS, BUSY, TIMEOUT or BACKEND_ERROR, and every
 * method settles within the backend's configured timeout (TIMEOUT means the effect is unknown).
 *
 * create/copy/clone are atomic: an image visible under its final name is complete, which is what
 * makes the re-drive rules of src/core/requests/request-record.ts sound.
 */

export interface VolumeInfo {
  readonly name: string;
  readonly sizeBytes: number;
  /** `volume@snapshot` this volume was cloned from, when known. */
  readonly parent?: string;
}

export interface SnapshotInfo {
  readonly name: string;
  readonly snapshot: string;
  readonly sizeBytes: number;
}

export interface StorageBackend {
  readonly kind: string;
  /**
   * create, copy and clone record `requestId` with the new volume, atomically with its
   * appearance under the final name (a volume that exists under its name carries the id of
   * the request that made it); `creatorOf` reads it back (undefined: none recorded).
   */
  create(name: string, sizeBytes: number, requestId?: string): Promise<VolumeInfo>;
  creatorOf(name: string): Promise<string | undefined>;
  remove(name: string): Promise<void>;
  list(): Promise<VolumeInfo[]>;
  info(name: string): Promise<VolumeInfo>;
  resize(name: string, sizeBytes: number): Promise<VolumeInfo>;
  copy(source: string, target: string, requestId?: string): Promise<VolumeInfo>;
  /** With `requestId`, recorded with the snapshot as create records it with a volume. */
  snapCreate(name: string, snapshot: string, requestId?: string): Promise<SnapshotInfo>;
  /** The request id recorded with snapshot NAME@SNAPSHOT (undefined: none recorded). */
  snapCreatorOf(name: string, snapshot: string): Promise<string | undefined>;
  snapList(name: string): Promise<SnapshotInfo[]>;
  snapRemove(name: string, snapshot: string): Promise<void>;
  clone(name: string, snapshot: string, target: string, requestId?: string): Promise<VolumeInfo>;
  /**
   * Fencing, where the storage cluster offers it: `fence` cuts every client at `address` off
   * from the cluster (its late commands fail with FENCED); `unfence` lifts that for `address`
   * and tells whether there was a fence to lift.
   */
  fence?(address: string): Promise<void>;
  unfence?(address: string): Promise<boolean>;
}
