// `npm run corpus`: fetches the micro:bit images (and with --bench the esbuild pair) into their cached
// folders, checked against pinned hashes; a no-op offline once they are there. One `error: …` line on failure.
import { CorpusError, ensureMicrobitCorpus, esbuildBinary } from './corpus.js';

const log = (line: string) => process.stderr.write(`${line}\n`);
try {
  const dir = ensureMicrobitCorpus(log);
  if (process.argv.includes('--bench')) for (const v of ['0.23.0', '0.23.1']) esbuildBinary(v, log);
  process.stdout.write(`corpus ready: ${dir}${process.argv.includes('--bench') ? ' and bench/cache' : ''}\n`);
} catch (e) {
  process.stderr.write(`error: ${e instanceof CorpusError ? e.message : (e as Error).message}\n`);
  process.exitCode = 1;
}
