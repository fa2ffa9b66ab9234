// RAM of an in-place restore's planning (planInPlace) and of a group's save phase (group-reads.ts): a
// bound from the package header and the slot geometry alone, which restoreRamBytes counts and the
// bootloader checks against MAX_PLAN_BYTES before it allocates any of it or erases anything.
import type { FlashGeometry } from '../flash/flash.js';
import type { PackageHeader } from '../package-format.js';
import { blockSetBytes, groupReadsBytes } from './group-reads.js';
import { writeGroups, type WriteGroup } from './write-groups.js';

/**
 * Most bytes an in-place restore may plan with. The figure is about two bytes per byte of the largest
 * write group plus PAIR_BUDGET: 250 KiB for a 64 KiB split on 4 KiB sectors, 2 MiB for a 1 MiB split,
 * 30 MiB for a 16 MiB one. 4 MiB admits write groups of up to about 2 MiB.
 */
export const MAX_PLAN_BYTES = 4 << 20;

/** What the plan keeps per write group (the group and its ring figures: in C, twelve 32-bit words). */
const PER_GROUP_BYTES = 48;

/** planRamBytes for groups already made. */
export function planRamBytesOf(groups: readonly WriteGroup[], slot: FlashGeometry): number {
  let reads = 0;
  let set = 0;
  for (const g of groups) {
    reads = Math.max(reads, groupReadsBytes(slot, g));
    set = Math.max(set, blockSetBytes(g));
  }
  // Beside one group's reads: two sets of a group's blocks (the planner's look-back and forward ones,
  // or the save phase's other readers) and the tags of one of them made into runs (4 bytes a block).
  return reads + 6 * set + PER_GROUP_BYTES * groups.length;
}

/** The most bytes planning and saving take for an in-place restore of `p` on a slot of geometry `slot`. */
export function planRamBytes(p: Pick<PackageHeader, 'splitSize' | 'newSize'>, slot: FlashGeometry): number {
  return planRamBytesOf(writeGroups(slot, p.splitSize, p.newSize), slot);
}
