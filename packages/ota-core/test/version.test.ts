import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compareVersions, isValidVersion, VersionError } from '../src/protocol/version.js';

describe('compareVersions', () => {
  it('orders numerically, not lexically', () => {
    expect(compareVersions('1.10.0', '1.9.0')).toBe(1);
    expect(compareVersions('1.9.0', '1.10.0')).toBe(-1);
    expect(compareVersions('2.0', '10.0')).toBe(-1);
    expect(compareVersions('10.0.1.9.20171112.1432', '10.0.1.9.20171112.1431')).toBe(1);
  });

  it('treats missing trailing components as zero', () => {
    expect(compareVersions('1.0', '1.0.0')).toBe(0);
    expect(compareVersions('1', '1.0.0.0')).toBe(0);
    expect(compareVersions('1.0.0.1', '1.0')).toBe(1);
    expect(compareVersions('v1.2', '1.2.0')).toBe(0);
    expect(compareVersions('1.02', '1.2')).toBe(0);
  });

  it('sorts pre-releases below the release and sanely among themselves', () => {
    const sorted = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0'];
    for (let i = 0; i < sorted.length; i++) {
      for (let j = 0; j < sorted.length; j++) {
        expect(compareVersions(sorted[i], sorted[j])).toBe(Math.sign(i - j));
      }
    }
    expect(compareVersions('1.0-rc.1', '1.0.0-rc.1')).toBe(0);
  });

  it('ignores build metadata', () => {
    expect(compareVersions('1.2.3+build.7', '1.2.3+other')).toBe(0);
  });

  it('handles components beyond Number precision', () => {
    expect(compareVersions('1.99999999999999999999', '1.99999999999999999998')).toBe(1);
  });

  it('rejects garbage', () => {
    for (const bad of ['', 'abc', '1..2', '1.2.', '.1', '1.2-', '1.2-a..b', '1 .2', '1.2+', '-1', 'x'.repeat(200), '1.2.3-a/b']) {
      expect(() => compareVersions(bad, '1.0'), bad).toThrow(VersionError);
      expect(isValidVersion(bad)).toBe(false);
    }
    expect(() => compareVersions(42 as unknown as string, '1')).toThrow(VersionError);
  });

  it('is antisymmetric and transitive on random dotted versions', () => {
    const v = fc.array(fc.nat(30), { minLength: 1, maxLength: 4 }).map((a) => a.join('.'));
    fc.assert(
      fc.property(v, v, v, (a, b, c) => {
        expect(compareVersions(a, b)).toBe(-compareVersions(b, a) || 0);
        if (compareVersions(a, b) <= 0 && compareVersions(b, c) <= 0) expect(compareVersions(a, c)).toBeLessThanOrEqual(0);
      }),
    );
  });
});
