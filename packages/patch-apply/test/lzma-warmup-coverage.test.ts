// Its own file: the decoder module must be first loaded here, after coverage starts (vitest gives each
// test file fresh modules), so that the warm-up its first decoder runs is all the coverage shows.
import { Session } from 'node:inspector/promises';
import { describe, expect, it } from 'vitest';
import { WARMUP_PROPS } from '../src/lzma-warmup-data.js';

describe('the decoder warm-up', () => {
  it("runs every block of the decoder's hot loop except its error exits", async () => {
    // Block coverage of run() from the warm-up alone: the first decoder of a fresh module instance
    // triggers it. A block it never runs would have no type feedback when a real stream reaches it.
    const session = new Session();
    session.connect();
    try {
      await session.post('Profiler.enable');
      await session.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
      const mod = await import('../src/lzma-decoder.js');
      new mod.LzmaDecoder(WARMUP_PROPS);
      const { result } = await session.post('Profiler.takePreciseCoverage');
      const script = result.find((s) => s.url.includes('lzma-decoder.ts'));
      expect(script).toBeDefined();
      const { scriptSource } = await session.post('Debugger.getScriptSource', { scriptId: script!.scriptId }).catch(async () => {
        await session.post('Debugger.enable');
        return session.post('Debugger.getScriptSource', { scriptId: script!.scriptId });
      });
      const run = script!.functions.find((f) => f.functionName === 'run');
      expect(run).toBeDefined();
      expect(run!.ranges[0].count).toBeGreaterThan(0);
      const unrun = run!.ranges
        .filter((r) => r.count === 0)
        .map((r) => scriptSource.slice(r.startOffset, r.endOffset).replace(/\/\/[^\n]*/g, '').replace(/\s+/g, ' ').trim())
        // Error exits throw: no stream that reaches them is decoded any further.
        .filter((text) => !/^\{?\s*this\.corrupt\(/.test(text))
        // A constant arm of a conditional has no operation that needs type feedback (here: a short rep
        // straight after a match, which an encoder would have folded into the match).
        .filter((text) => !/^:\s*\d+$/.test(text));
      expect(unrun).toEqual([]);
    } finally {
      await session.post('Profiler.stopPreciseCoverage').catch(() => undefined);
      session.disconnect();
    }
  });
});
