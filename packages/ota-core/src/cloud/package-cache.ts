// A bounded cache of package bytes by content address (least recently used out first), so a rollout
// reads and hashes a package once however many devices it goes to, and memory stays flat in the
// number of devices. Whatever does not fit is read again from its object when next needed.

export class PackageCache {
  private readonly entries = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(readonly maxBytes: number) {}

  get size(): number {
    return this.bytes;
  }

  /** The bytes of `sha`, from the cache or from `load` (kept when they fit). */
  get(sha: string, load: () => Uint8Array): Uint8Array {
    const hit = this.entries.get(sha);
    if (hit !== undefined) {
      // Re-insert: a Map iterates in insertion order, so the first entry is the least recently used.
      this.entries.delete(sha);
      this.entries.set(sha, hit);
      return hit;
    }
    const value = load();
    if (value.length <= this.maxBytes) {
      while (this.bytes + value.length > this.maxBytes) {
        const [oldest, v] = this.entries.entries().next().value!;
        this.entries.delete(oldest);
        this.bytes -= v.length;
      }
      this.entries.set(sha, value);
      this.bytes += value.length;
    }
    return value;
  }
}
