// Long-running commands (serve, device) stop on Ctrl-C / SIGTERM, or when a caller's
// AbortSignal fires (tests run them in-process).

export type Out = (line: string) => void;

export const stdout: Out = (line) => void process.stdout.write(`${line}\n`);

/** Resolves on SIGINT/SIGTERM or when `signal` aborts, whichever comes first. */
export function untilStopped(signal?: AbortSignal, extra?: Promise<unknown>): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    if (signal?.aborted) return done();
    signal?.addEventListener('abort', done, { once: true });
    extra?.then(done, done);
  });
}
