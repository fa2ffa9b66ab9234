// Deterministic test images shared by the restore tests and the boot fuzz.

/** Code-like bytes: compressible, with structure for the matcher. */
export function image(n: number, seed: number): Uint8Array {
  const a = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    a[i] = (s >>> 24) & (i % 4 === 3 ? 0xff : 0x0f);
  }
  return a;
}

/** OLD -> NEW that changes every chunk: an insertion near the start shifts everything after it. */
export function pair(size: number): { old: Uint8Array; neu: Uint8Array } {
  const old = image(size, 1);
  const neu = new Uint8Array(size + 700);
  neu.set(old.subarray(0, 1500));
  neu.set(image(700, 2), 1500);
  neu.set(old.subarray(1500), 2200);
  for (let i = 3000; i < neu.length; i += 97) neu[i] ^= 0x20;
  return { old, neu };
}
