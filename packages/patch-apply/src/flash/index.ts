export * from './flash.js';
export * from './sector-pattern.js';
export * from './profiles.js';
export * from './memory-flash.js';
export * from './file-flash.js';
export * from './faulty-flash.js';
export * from './wear-meter.js';
export * from './partition-layout.js';
export * from './handover.js';
export * from './journal.js';
export { Prng } from './prng.js';

export * from './flash-dir.js';
