// The backup ring's index of saved records by slot offset: which record covers a slot byte, where the
// next one starts, and which bytes of a range none covers (backup-ring.ts).

/** What an index needs of a record. */
export interface Indexed {
  readonly slotOffset: number;
  readonly length: number;
  readonly seq: number;
  readonly sector: number;
}

export class RecordIndex<R extends Indexed> {
  /** Sorted by slot offset, then sequence. */
  private records: R[] = [];
  /** reachEnd[i]: the furthest end of records[0..i] (to find a covering record among overlapping ones). */
  private reachEnd: number[] = [];

  get size(): number {
    return this.records.length;
  }

  /** Replaces the contents (a scan of the ring). */
  load(records: R[]): void {
    this.records = records.sort((a, b) => a.slotOffset - b.slotOffset || a.seq - b.seq);
    this.reindex(0);
  }

  /** Adds a record written after every record held (its sequence is the highest). */
  add(rec: R): void {
    // Saves mostly go up the slot: then the record goes last and the index grows by one entry.
    const r = this.records;
    let i = r.length;
    while (i > 0 && r[i - 1].slotOffset > rec.slotOffset) i--;
    r.splice(i, 0, rec);
    this.reindex(i);
  }

  /** Drops the records of a ring sector about to be erased. */
  dropSector(sector: number): void {
    if (!this.records.some((r) => r.sector === sector)) return;
    this.records = this.records.filter((r) => r.sector !== sector);
    this.reindex(0);
  }

  some(pred: (r: R) => boolean): boolean {
    return this.records.some(pred);
  }

  /** The record covering slot byte `offset`, or null. */
  find(offset: number): R | null {
    const r = this.records;
    // The last record starting at or before `offset`.
    let lo = 0;
    let hi = r.length - 1;
    let idx = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (r[mid].slotOffset <= offset) {
        idx = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    // Records do not overlap when the restore writes them; the flash is not trusted to say so, and a
    // longer record further left may still cover `offset` (reachEnd says whether one does).
    for (let i = idx; i >= 0 && this.reachEnd[i] > offset; i--) if (offset < r[i].slotOffset + r[i].length) return r[i];
    return null;
  }

  /** The lowest slot offset above `offset` where a record starts (Infinity when none does). */
  nextStart(offset: number): number {
    const r = this.records;
    let lo = 0;
    let hi = r.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (r[mid].slotOffset <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo < r.length ? r[lo].slotOffset : Infinity;
  }

  /** Slot bytes of [start, start + length) that no record covers, as runs (`step`-aligned input gives `step`-aligned runs). */
  uncovered(start: number, length: number, step: number): { offset: number; length: number }[] {
    const out: { offset: number; length: number }[] = [];
    const end = start + length;
    let at = start;
    while (at < end) {
      const rec = this.find(at);
      if (rec !== null) {
        at = Math.min(end, rec.slotOffset + rec.length);
        continue;
      }
      let stop = Math.min(end, at + step);
      while (stop < end && this.find(stop) === null) stop = Math.min(end, stop + step);
      const last = out[out.length - 1];
      if (last !== undefined && last.offset + last.length === at) last.length += stop - at;
      else out.push({ offset: at, length: stop - at });
      at = stop;
    }
    return out;
  }

  /** Rebuilds reachEnd from record `from` on. */
  private reindex(from: number): void {
    this.reachEnd.length = from;
    let reach = from > 0 ? this.reachEnd[from - 1] : 0;
    for (let i = from; i < this.records.length; i++) {
      const rec = this.records[i];
      reach = Math.max(reach, rec.slotOffset + rec.length);
      this.reachEnd.push(reach);
    }
  }
}
