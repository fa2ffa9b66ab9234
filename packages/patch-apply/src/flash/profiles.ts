// Named flash profiles: the sector map, program unit, erased value and overwrite rule of real parts, with
// their datasheet timings (typical) and rated endurance, for the simulators, the wear report and the
// modelled restore time. A profile describes a part family from offset 0 on; a simulated device is as
// large as its partitions need (a real part of the family may be smaller: `partBytes`).
//
// Sources (read through the project's search tool; figures are the typical column):
//  - spi-nor-4k: Winbond W25Q32JV datasheet (digikey.ca/en/datasheets/winbond-electronics/
//    winbond-electronicsw25q32jv20spi20revf2005112017), the SPI NOR of ESP8266 modules: 4 KiB sector
//    erase tSE 45 ms typ, 256-byte page program tPP 0.4 ms typ, 100,000 erase cycles; NOR: a program
//    only clears bits, so a byte may be programmed again ('and').
//  - stm32f4: RM0090 §3.3 and §3.5.4 (stm32.dirba.io/rm0090-…/03-embedded-flash-memory-interface, and
//    easymanua.ls/st/stm32f40-series/manual?p=67): sectors 4 x 16 KiB, 1 x 64 KiB, then 128 KiB;
//    "successive write operations are possible without an erase when changing bits from 1 to 0"
//    ('and'); x32 parallelism programs words. Timings from DS8626 "Flash memory programming" (x32):
//    word 16 µs, 16/64/128 KiB sector erase 250/550/1000 ms typ; 10,000 cycles. The search tool did not
//    surface that table: check these figures against the datasheet of your part.
//  - stm32l4: DS10198 §3.4 (STM32L476, 38.142.81.21:8001/manual/st/stm32l476rgt6/…/page-19): 2 KiB
//    pages; RM0351: 64-bit double-words with 8 ECC bits, PROGERR on programming a double-word that is
//    not erased (community.st.com, "STM32L4 writes flash memory in blocks of 64 bits with 8 bits of
//    ECC… you can not write a second time"): 'program-once'. DS10198 "Flash memory characteristics":
//    double-word 81.69 µs, page erase 22.02 ms typ, 10,000 cycles.
//  - stm32h7: RM0433 (STM32H743): 128 KiB sectors, 256-bit flash word (32 B) + 10 ECC bits, one
//    program per word after an erase (community.st.com/t5/stm32-mcus-products/flash-writing-issue:
//    "you can only flash some non-null value once after erase"): 'program-once'. Sector erase 1.1 s typ
//    at x32 (ST's answer in community.st.com/…/stm32h743-flash-erasesector-reset-problem, from DS12110);
//    flash-word program time not found by the search tool: 100 µs is an assumed round figure.
//    10,000 cycles (the figure ST staff quote for H743 sectors).
//  - nrf52: Nordic nRF52 product specifications, NVMC (docs.nordicsemi.com ps_nrf52832/ps_nrf52810
//    nvmc pages): 4 KiB pages, full 32-bit word writes, a word written at most nWRITE = 2 times between
//    erases; the NVMC electrical table (nRF5340 PS, same NVMC): tWRITE 43 µs per word, tERASEPAGE
//    87.5 ms, 10,000 cycles. Modelled 'program-once' (stricter than nWRITE = 2; the restore writes a
//    word once anyway).
import { FlashError, type ErasedValue, type OverwriteMode } from './flash.js';
import type { SectorPattern } from './sector-pattern.js';

export interface FlashTiming {
  /** Typical erase time of a sector of `bytes` (ms). */
  eraseMs(bytes: number): number;
  /** A program is modelled as whole pages of this many bytes (the program unit, or SPI NOR's 256-byte page). */
  readonly programPageBytes: number;
  /** Typical time to program one such page (µs). */
  readonly programPageUs: number;
}

export interface FlashProfile {
  readonly name: string;
  readonly part: string;
  readonly sectors: SectorPattern;
  readonly programUnit: number;
  readonly erasedValue: ErasedValue;
  readonly overwrite: OverwriteMode;
  readonly timing: FlashTiming;
  /** Rated erase cycles per sector. */
  readonly endurance: number;
  /** Size of the part the figures come from (a simulated device may be larger). */
  readonly partBytes: number;
}

const KiB = 1024;

/** Erase time from a table of sector sizes (ms), scaled linearly for a size the table does not list. */
function eraseTable(table: Record<number, number>): (bytes: number) => number {
  const sizes = Object.keys(table).map(Number);
  return (bytes) => table[bytes] ?? (table[sizes[sizes.length - 1]] * bytes) / sizes[sizes.length - 1];
}

export const FLASH_PROFILES: readonly FlashProfile[] = [
  {
    name: 'spi-nor-4k',
    part: 'Winbond W25Q32JV SPI NOR (ESP8266 external flash)',
    sectors: { runs: [], then: 4 * KiB },
    programUnit: 1,
    erasedValue: 0xff,
    overwrite: 'and',
    timing: { eraseMs: eraseTable({ [4 * KiB]: 45 }), programPageBytes: 256, programPageUs: 400 },
    endurance: 100_000,
    partBytes: 4 * 1024 * KiB,
  },
  {
    name: 'stm32f4',
    part: 'STM32F405/407 internal flash (uneven sectors)',
    sectors: { runs: [{ count: 4, size: 16 * KiB }, { count: 1, size: 64 * KiB }], then: 128 * KiB },
    programUnit: 4,
    erasedValue: 0xff,
    overwrite: 'and',
    timing: { eraseMs: eraseTable({ [16 * KiB]: 250, [64 * KiB]: 550, [128 * KiB]: 1000 }), programPageBytes: 4, programPageUs: 16 },
    endurance: 10_000,
    partBytes: 1024 * KiB,
  },
  {
    name: 'stm32l4',
    part: 'STM32L476 internal flash (2 KiB pages, 8-byte ECC double-words)',
    sectors: { runs: [], then: 2 * KiB },
    programUnit: 8,
    erasedValue: 0xff,
    overwrite: 'program-once',
    timing: { eraseMs: eraseTable({ [2 * KiB]: 22.02 }), programPageBytes: 8, programPageUs: 81.69 },
    endurance: 10_000,
    partBytes: 1024 * KiB,
  },
  {
    name: 'stm32h7',
    part: 'STM32H743 internal flash (128 KiB sectors, 32-byte ECC flash words)',
    sectors: { runs: [], then: 128 * KiB },
    programUnit: 32,
    erasedValue: 0xff,
    overwrite: 'program-once',
    timing: { eraseMs: eraseTable({ [128 * KiB]: 1100 }), programPageBytes: 32, programPageUs: 100 },
    endurance: 10_000,
    partBytes: 2048 * KiB,
  },
  {
    name: 'nrf52',
    part: 'nRF52 internal flash (4 KiB pages, 32-bit words)',
    sectors: { runs: [], then: 4 * KiB },
    programUnit: 4,
    erasedValue: 0xff,
    overwrite: 'program-once',
    timing: { eraseMs: eraseTable({ [4 * KiB]: 87.5 }), programPageBytes: 4, programPageUs: 43 },
    endurance: 10_000,
    partBytes: 1024 * KiB,
  },
];

export const PROFILE_NAMES: readonly string[] = FLASH_PROFILES.map((p) => p.name);

/** The profile called `name`; throws FlashError naming the known ones otherwise. */
export function flashProfile(name: string): FlashProfile {
  const p = FLASH_PROFILES.find((x) => x.name === name);
  if (p === undefined) throw new FlashError(`unknown flash profile '${name}' (known: ${PROFILE_NAMES.join(', ')})`);
  return p;
}

/** Typical time (ms) of one program call of `bytes` bytes on this profile. */
export function programMs(t: FlashTiming, bytes: number): number {
  return (Math.ceil(bytes / t.programPageBytes) * t.programPageUs) / 1000;
}
