import { expect } from 'vitest';
import { PackageError } from '../../src/package-error.js';

/** The PackageError code `f` throws ('no error' when it returns); anything else fails the test. */
export function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PackageError);
    return (e as PackageError).code;
  }
  return 'no error';
}
