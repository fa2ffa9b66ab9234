// Freshness of a device sign-in (MQTT CONNECT, CoAP /auth): its timestamp must lie within a window of
// the cloud's clock, and the same sign-in (the same HMAC) is accepted once within that window. Without
// this a sign-in captured once (a CONNECT on a network the device shares, a log) signs in for ever.
//
// Memory: one entry per sign-in accepted in the last 2 windows, kept in a map ordered by insertion and
// swept from its oldest end; a bound on entries makes a flood of fresh sign-ins refuse new ones (they
// are all valid HMACs of registered devices, so the bound is well above any real fleet's reconnect rate).

export const DEFAULT_SIGN_IN_WINDOW_MS = 15 * 60_000;
const DEFAULT_MAX_ENTRIES = 1_000_000;

export interface SignInGuardOptions {
  /** The cloud's clock in ms (injectable for tests); default Date.now. */
  now?: () => number;
  /** How far a sign-in's timestamp may be from the clock, either way (default 15 min). */
  windowMs?: number;
  /** Most sign-ins remembered at once (default 1,000,000). */
  maxEntries?: number;
}

export type SignInVerdict = { ok: true } | { ok: false; code: 'STALE_TIMESTAMP' | 'REPLAYED'; message: string };

export class SignInGuard {
  readonly windowMs: number;
  private readonly now: () => number;
  private readonly maxEntries: number;
  /** Sign-in key -> time it was first seen (insertion order = time order). */
  private readonly seen = new Map<string, number>();

  constructor(opts: SignInGuardOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.windowMs = opts.windowMs ?? DEFAULT_SIGN_IN_WINDOW_MS;
    this.maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
    if (!(this.windowMs > 0) || !(this.maxEntries > 0)) throw new RangeError('sign-in window and entry bound must be positive');
  }

  /** The clock a verifier checks timestamps against. */
  clock(): number {
    return this.now();
  }

  /**
   * Checks a verified sign-in (its HMAC already matched): `timestamp` in ms, `key` what makes it unique
   * (the device and its password). Records it when it is accepted.
   */
  admit(device: string, timestamp: number | undefined, password: string): SignInVerdict {
    const now = this.now();
    if (timestamp === undefined) return { ok: false, code: 'STALE_TIMESTAMP', message: 'the sign-in carries no timestamp' };
    const skew = timestamp - now;
    if (Math.abs(skew) > this.windowMs)
      return { ok: false, code: 'STALE_TIMESTAMP', message: `timestamp ${skew > 0 ? 'ahead of' : 'behind'} the cloud's clock by ${Math.round(Math.abs(skew) / 1000)} s (window ±${this.windowMs / 1000} s)` };
    this.sweep(now);
    const key = `${device}\u0000${password.toLowerCase()}`;
    if (this.seen.has(key)) return { ok: false, code: 'REPLAYED', message: 'this sign-in was used already: a device signs in with a new timestamp each time' };
    if (this.seen.size >= this.maxEntries) return { ok: false, code: 'REPLAYED', message: 'too many sign-ins in the window: try again later' };
    this.seen.set(key, now);
    return { ok: true };
  }

  /** Entries remembered now (for tests and the bench). */
  get size(): number {
    return this.seen.size;
  }

  // A sign-in older than the window either way cannot pass the timestamp check again: forget it.
  private sweep(now: number): void {
    for (const [key, at] of this.seen) {
      if (now - at <= 2 * this.windowMs) break;
      this.seen.delete(key);
    }
  }
}
