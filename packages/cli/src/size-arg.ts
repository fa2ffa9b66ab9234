/** Parses a byte size as users write it: 4096, 4K, 4k, 4KiB, 64KB, 1M, 1MiB (binary multiples). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+)\s*(?:([kmg])(?:i?b)?|b)?\s*$/i.exec(text);
  if (!m) throw new CliError(`invalid size "${text}" (examples: 4096, 4K, 64KiB, 1M)`);
  const mult = m[2] ? 1024 ** ('kmg'.indexOf(m[2].toLowerCase()) + 1) : 1;
  const value = Number(m[1]) * mult;
  if (!Number.isSafeInteger(value)) throw new CliError(`size "${text}" is too large`);
  return value;
}

/** Human-readable byte count for messages. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

/** An error whose message is shown to the user as is (`error: …`), exit status 1. */
export class CliError extends Error {
  override readonly name = 'CliError';
}
