// The index and the images that worker threads read live in SharedArrayBuffers, so handing them over
// copies nothing.

/** A copy of `data` in shared memory. */
export function sharedCopy(data: Uint8Array): Uint8Array {
  const copy = new Uint8Array(new SharedArrayBuffer(data.length));
  copy.set(data);
  return copy;
}

/** Whether every array lives in shared memory, so a worker can read it without a copy. */
export function isShared(...arrays: (ArrayBufferView | undefined)[]): boolean {
  return arrays.every((a) => a !== undefined && a.buffer instanceof SharedArrayBuffer);
}
