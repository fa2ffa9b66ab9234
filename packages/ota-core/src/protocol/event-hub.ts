// A minimal typed event fan-out with a timed wait, for the device service and the cloud.

export class EventTimeoutError extends Error {
  override name = 'EventTimeoutError';
}

export class EventHub<E> {
  private readonly listeners = new Set<(e: E) => void>();

  on(listener: (e: E) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  emit(e: E): void {
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch (err) {
        // A listener's bug must not derail the service; surface it on its own turn.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  /** Resolves with the first future event matching `pred`; rejects after `timeoutMs`. */
  waitFor(pred: (e: E) => boolean, timeoutMs = 30_000, what = 'event'): Promise<E> {
    return new Promise<E>((resolve, reject) => {
      const off = this.on((e) => {
        if (!pred(e)) return;
        clearTimeout(timer);
        off();
        resolve(e);
      });
      const timer = setTimeout(() => {
        off();
        reject(new EventTimeoutError(`no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
    });
  }
}
