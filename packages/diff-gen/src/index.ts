export { generatePackage, GenerateError, DEFAULT_DICT_SIZE, DEFAULT_SPLIT_SIZE } from './generate.js';
export type { GenerateOptions, GenerateProgress, GenerateResult } from './generate.js';
export { buildSuffixArray, buildLcpArray, SuffixArrayError } from './suffix-array.js';
export { matchChunk, indexImage, windowByte, MatcherError } from './matcher.js';
export type { ChunkWindow, MatchOptions, Op, SourceIndex } from './matcher.js';
export { encodeCommands } from './command-stream.js';
export { compressRaw, lzmaFilterOptions } from './lzma-compress.js';
