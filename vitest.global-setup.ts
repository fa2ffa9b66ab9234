// Before any test: the fetched part of the corpus (micro:bit images) is in corpus/microbit-codal,
// fetched from the npm registry on the first run and checked against its pinned hashes, offline after.
import { ensureMicrobitCorpus } from './bench/src/corpus.js';

export default function setup(): void {
  ensureMicrobitCorpus((line) => process.stderr.write(`${line}\n`));
}
