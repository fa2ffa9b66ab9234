// Which devices of the simulated fleet fail their update: exactly round(rate × n) of them, picked by
// a seeded shuffle, so the same scenario run again fails the same devices (the rollout still picks
// its waves at random, as it does for a real fleet).

/** "0.2" or "20%": a share of the fleet from 0 to 1; throws a readable Error otherwise. */
export function parseFailRate(text: string): number {
  const t = text.trim();
  const m = /^(\d{1,3}(?:\.\d{1,6})?)%$/.exec(t);
  const v = m !== null ? Number(m[1]) / 100 : /^\d(?:\.\d{1,8})?$/.test(t) ? Number(t) : NaN;
  if (!(v >= 0 && v <= 1)) throw new Error(`--fail-rate must be a fraction from 0 to 1 or a percentage from 0% to 100%, not ${JSON.stringify(text.slice(0, 40))}`);
  return v;
}

/** mulberry32: a small seeded PRNG, plenty for picking devices. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The fleet indexes (0..n-1) that fail: round(rate × n) of them, the same for the same seed. */
export function failingDevices(n: number, rate: number, seed: number): Set<number> {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`bad fleet size ${n}`);
  if (!(rate >= 0 && rate <= 1)) throw new Error(`bad fail rate ${rate}`);
  const k = Math.round(rate * n);
  const idx = Array.from({ length: n }, (_, i) => i);
  const rnd = prng(seed);
  // The first k places of a Fisher-Yates shuffle.
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rnd() * (n - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return new Set(idx.slice(0, k));
}
