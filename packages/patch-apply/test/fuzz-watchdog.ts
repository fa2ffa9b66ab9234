// A hang guard for synchronous code under test. A test timeout cannot fire while the event loop is
// blocked by an endless loop, so a worker thread watches a shared heartbeat instead: if one guarded
// call runs past `hangMs`, it writes the input being processed to a file and to stderr, then kills
// the test process, which fails the run with the counterexample on record.
import { Worker } from 'node:worker_threads';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

/** Cases per property: OTADIFF_FUZZ_RUNS (`npm run fuzz`), else the suite's own count for CI. */
export function fuzzRuns(ciRuns: number): number {
  return Number(process.env.OTADIFF_FUZZ_RUNS ?? ciRuns);
}

/** The seed of every fuzz suite: OTADIFF_FUZZ_SEED, else a fixed one, so CI runs the same cases each time. */
export const FUZZ_SEED = Number(process.env.OTADIFF_FUZZ_SEED ?? 0x07ad1ff);

// Plain CommonJS for an eval worker: it must not depend on the TypeScript transform of the test runner.
const WATCHER = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { shared, hangMs, reportPath, label } = workerData;
const flags = new Int32Array(shared, 0, 2);      // [0] = 1 while a guarded call runs, [1] = input length
const started = new Float64Array(shared, 8, 1);  // Date.now() when it started
const input = new Uint8Array(shared, 16);
const nap = new Int32Array(new SharedArrayBuffer(4));
for (;;) {
  Atomics.wait(nap, 0, 0, 100);
  if (Atomics.load(flags, 0) === 1 && Date.now() - started[0] > hangMs) {
    const bytes = Buffer.from(input.subarray(0, Atomics.load(flags, 1)));
    fs.writeFileSync(reportPath, bytes);
    fs.writeSync(2, '\\n' + label + ': a call ran longer than ' + hangMs + ' ms (hang); input (' + bytes.length +
      ' bytes) saved to ' + reportPath + '\\nhex: ' + bytes.toString('hex') + '\\n');
    process.kill(process.pid, 'SIGKILL');
  }
}
`;

export class HangWatchdog {
  private readonly worker: Worker;
  private readonly flags: Int32Array;
  private readonly started: Float64Array;
  private readonly input: Uint8Array;

  constructor(label: string, hangMs: number, maxInputBytes: number) {
    const shared = new SharedArrayBuffer(16 + maxInputBytes);
    this.flags = new Int32Array(shared, 0, 2);
    this.started = new Float64Array(shared, 8, 1);
    this.input = new Uint8Array(shared, 16);
    const reportPath = join(tmpdir(), `otadiff-hang-${process.pid}.bin`);
    this.worker = new Worker(WATCHER, { eval: true, workerData: { shared, hangMs, reportPath, label } });
    this.worker.unref();
  }

  /** Runs `fn` under the guard; `input` is what gets reported if it never returns. */
  guard<T>(input: Uint8Array, fn: () => T): T {
    const n = Math.min(input.length, this.input.length);
    this.input.set(input.subarray(0, n));
    Atomics.store(this.flags, 1, n);
    this.started[0] = Date.now();
    Atomics.store(this.flags, 0, 1);
    try {
      return fn();
    } finally {
      Atomics.store(this.flags, 0, 0);
    }
  }

  async stop(): Promise<void> {
    await this.worker.terminate();
  }
}

export type HangGuard = Pick<HangWatchdog, 'guard'>;

/**
 * A HangWatchdog for the enclosing describe block: made before its tests, after the hooks registered
 * earlier (so its input size may depend on what they built), and stopped after them.
 */
export function suiteWatchdog(label: string, hangMs: number, maxInputBytes: () => number): HangGuard {
  let watchdog: HangWatchdog | undefined;
  beforeAll(() => {
    watchdog = new HangWatchdog(label, hangMs, maxInputBytes());
  });
  afterAll(async () => {
    await watchdog?.stop();
  });
  return { guard: (input, fn) => watchdog!.guard(input, fn) };
}
