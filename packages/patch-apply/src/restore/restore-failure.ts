// Why a restore gives up: the reason is stored in the journal's aux field of a 'failed' record.

export const FailCode = {
  badPackage: 1,
  packageHash: 2,
  oldImage: 3,
  layout: 4,
  newImage: 5,
  backup: 6,
  rolledBack: 7,
  signature: 8,
  securityCounter: 9,
  /** The hand-over no longer fits the device or its package while the restore was under way. */
  handover: 10,
} as const;
export type FailReason = keyof typeof FailCode;

export const reasonOf = (aux: number): FailReason =>
  (Object.keys(FailCode) as FailReason[]).find((k) => FailCode[k] === aux) ?? 'badPackage';

/** Thrown inside the restore; boot() turns it into a 'failed' journal record and an outcome. */
export class RestoreFailure extends Error {
  constructor(
    readonly reason: FailReason,
    message: string,
  ) {
    super(message);
  }
}
