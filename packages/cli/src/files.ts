import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CliError } from './size-arg.js';

export function readInput(path: string, what: string): Uint8Array {
  try {
    return ownView(readFileSync(path));
  } catch (e) {
    throw inputError(e, path, what);
  }
}

/**
 * readInput on the thread pool, in one read: a caller starts it, loads its modules meanwhile (on the
 * main thread) and awaits it after. Always settles: to a CliError when the file cannot be read.
 */
export async function readInputLater(path: string, what: string): Promise<Uint8Array> {
  try {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      // A pipe or a device has no size to read up to (e.g. `<(cat old.bin)`): read it to its end.
      if (!st.isFile()) return ownView(await fh.readFile());
      const size = st.size;
      const buf = new Uint8Array(size);
      let got = 0;
      while (got < size) {
        const { bytesRead } = await fh.read(buf, got, size - got, got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      // A file that shrank while it was read (a short read at the end) gives what it had.
      return got === size ? buf : buf.slice(0, got);
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw inputError(e, path, what);
  }
}

/** A Buffer as a Uint8Array that owns its memory: a view of a large file's buffer, a copy of a small one from Node's shared pool. */
function ownView(b: Buffer): Uint8Array {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? new Uint8Array(b.buffer, 0, b.byteLength) : new Uint8Array(b);
}

function inputError(e: unknown, path: string, what: string): CliError {
  const code = (e as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
  return new CliError(`cannot read ${what} ${path}: ${why}`);
}

/** Writes to a temporary file beside `path` and renames it, so a failed run never leaves a partial output. */
export function writeOutputAtomic(path: string, data: Uint8Array, mode = 0o644): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'w', mode);
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) closeSync(fd);
    rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such directory' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : code === 'ENOSPC' ? 'no space left on the device' : (e as Error).message;
    throw new CliError(`cannot write ${path}: ${why}`);
  }
}
