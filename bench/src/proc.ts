// Running external programs: PATH lookup, checked execution, whole-process wall time.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Absolute path of an executable on PATH, or null. */
export function findExecutable(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

export interface RunResult {
  stdout: Buffer;
  seconds: number;
}

/** Runs a program to completion; throws with its stderr unless it exits 0. `seconds` spans spawn to exit. */
export function run(cmd: string, args: string[], opts: { maxBuffer?: number } = {}): RunResult {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: opts.maxBuffer ?? 256 << 20 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}: ${r.stderr.toString().trim()}`);
  return { stdout: r.stdout, seconds };
}
