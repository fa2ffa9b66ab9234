// Packages made on demand: a diff from the version a device runs to the job's target (for the
// product's restore mode), or the target's full image as a raw (OTA_RAW) package, signed with the
// cloud's package key and carrying the target's release. Each is made once: its bytes become an
// object (content-addressed, fsynced), its metadata a `packages` row, and what a notice needs
// (size, digests) comes from that row, so a push reads no package bytes at all.

import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { generatePackage, packRaw, type GenerateResult } from '@otadiff/diff-gen';
import { parseHeader } from '@otadiff/patch-apply';
import type { CloudStore, StoredPackage } from './cloud-store.js';
import type { ObjectStore } from './object-store.js';
import type { PackageCache } from './package-cache.js';

export interface PackageMeta {
  name: string;
  /** URL path under the file server. */
  path: string;
  sha256: string;
  md5: string;
  size: number;
  /** The header's split size (a diff's notice repeats it). */
  splitSize: number;
}

/** Short fingerprint of a signing key's public half, so made packages follow a change of key. */
function keyTag(key: KeyObject | undefined): string {
  if (key === undefined) return 'unsigned';
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  return `k${createHash('sha256').update(spki).digest('hex').slice(0, 12)}`;
}

const MAX_REMEMBERED = 4096;

export class PackageMaker {
  private readonly tag: string;
  private readonly known = new Map<string, PackageMeta>();
  private readonly making = new Map<string, Promise<PackageMeta>>();

  constructor(
    private readonly store: CloudStore,
    private readonly objects: ObjectStore,
    private readonly cache: PackageCache,
    readonly signingKey: KeyObject | undefined,
  ) {
    this.tag = keyTag(signingKey);
  }

  /** The diff package from `from` to `to`; undefined when the product ships full images or lacks either image. */
  async diff(productKey: string, from: string, to: string): Promise<PackageMeta | undefined> {
    const cfg = await this.store.product(productKey);
    if (cfg === undefined || cfg.mode === 'full') return undefined;
    const mode = cfg.mode;
    const [a, b] = await Promise.all([this.store.storedFirmware(productKey, from), this.store.storedFirmware(productKey, to)]);
    if (a === undefined || b === undefined) return undefined;
    const name = `${productKey}/${a.version}_to_${b.version}.${mode}.s${cfg.splitSize}.d${cfg.dictSize}.${this.tag}`;
    return this.made(name, productKey, async () =>
      generatePackage(this.objects.read(a.sha256), this.objects.read(b.sha256), {
        mode,
        splitSize: cfg.splitSize,
        dictSize: cfg.dictSize,
        firmwareVersion: b.version,
        securityCounter: b.securityCounter,
        allowDowngrade: b.allowDowngrade,
        signingKey: this.signingKey,
      }),
    );
  }

  /** The full image of `version` as a raw package; undefined when the store lacks it. */
  async raw(productKey: string, version: string): Promise<PackageMeta | undefined> {
    const f = await this.store.storedFirmware(productKey, version);
    if (f === undefined) return undefined;
    const split = (await this.store.product(productKey))?.splitSize ?? 64 * 1024;
    const name = `${productKey}/${f.version}.raw.s${split}.${this.tag}`;
    return this.made(name, productKey, async () =>
      packRaw(this.objects.read(f.sha256), {
        splitSize: split,
        firmwareVersion: f.version,
        securityCounter: f.securityCounter,
        allowDowngrade: f.allowDowngrade,
        signingKey: this.signingKey,
      }),
    );
  }

  /**
   * What a device on `from` gets for `to`: the diff when the store can make one, else the full image
   * (with the reason the diff could not be made, when it failed rather than did not apply).
   */
  async forDevice(productKey: string, from: string | undefined, to: string): Promise<{ meta: PackageMeta; isDiff: boolean; diffError?: Error }> {
    let diffError: Error | undefined;
    if (from !== undefined) {
      try {
        const d = await this.diff(productKey, from, to);
        if (d !== undefined) return { meta: d, isDiff: true };
      } catch (e) {
        diffError = e as Error;
      }
    }
    const r = await this.raw(productKey, to);
    if (r === undefined) throw new Error(`${productKey} has no firmware ${to}`);
    return diffError === undefined ? { meta: r, isDiff: false } : { meta: r, isDiff: false, diffError };
  }

  /** The package's bytes (from the bounded cache) and parsed header. */
  withBytes(meta: PackageMeta): StoredPackage {
    const bytes = this.bytes(meta);
    return { path: meta.path, size: meta.size, sha256: meta.sha256, bytes, header: parseHeader(bytes) };
  }

  bytes(meta: PackageMeta): Uint8Array {
    return this.cache.get(meta.sha256, () => this.objects.read(meta.sha256));
  }

  /** A made package by name: remembered, else its row (its object still there), else made now (once per process). */
  private async made(name: string, productKey: string, make: () => Promise<GenerateResult>): Promise<PackageMeta> {
    const hit = this.known.get(name);
    if (hit !== undefined) return hit;
    let p = this.making.get(name);
    if (p === undefined) {
      p = (async () => {
        const row = await this.store.db.selectFrom('packages').selectAll().where('name', '=', name).executeTakeFirst();
        if (row !== undefined && this.objects.has(row.sha256)) return this.remember({ name, path: this.objects.urlPath(row.sha256), sha256: row.sha256, md5: row.md5, size: Number(row.size), splitSize: row.split_size });
        const { package: bytes, header } = await make();
        const { sha256, size } = this.objects.put(bytes);
        const md5 = createHash('md5').update(bytes).digest('hex');
        // Two workers may make the same package at once: the same bytes, the same object; one row.
        await this.store.db
          .insertInto('packages')
          .values({ name, product_key: productKey, sha256, md5, size, split_size: header.splitSize, created_at: Date.now() })
          .onConflict((oc) => oc.column('name').doUpdateSet({ sha256, md5, size, split_size: header.splitSize }))
          .execute();
        return this.remember({ name, path: this.objects.urlPath(sha256), sha256, md5, size, splitSize: header.splitSize });
      })();
      this.making.set(name, p);
      p.finally(() => this.making.delete(name)).catch(() => {});
    }
    return p;
  }

  private remember(m: PackageMeta): PackageMeta {
    if (this.known.size >= MAX_REMEMBERED) this.known.delete(this.known.keys().next().value!);
    this.known.set(m.name, m);
    return m;
  }
}
