// What a job (or a rollout's job) does for one device, from the version it runs and the security
// counter it has recorded: push the target, wait for its version, or skip it (and why).
//
// An upgrade goes to devices on older versions. A device on a newer version is brought back only when
// the target release allows a downgrade (an owner's deliberate rollback), and never to a release whose
// security counter is below the one the device recorded: the device refuses such a package itself
// (docs/SECURITY.md, "Anti-rollback"), so the cloud does not send it.

import { compareVersions } from '../protocol/version.js';

/** The release a job installs, as the decision needs it. */
export interface JobTarget {
  version: string;
  allowDowngrade: boolean;
  securityCounter: number;
}

export type TargetDecision =
  /** The version is not known yet: decide at its first inform. */
  | { kind: 'wait' }
  /** Push the target: an upgrade, or a rollback (the device runs a newer version). */
  | { kind: 'push'; rollback: boolean }
  | { kind: 'skip'; detail: string };

export function decideTarget(reported: string | null, recordedCounter: number, t: JobTarget): TargetDecision {
  if (reported === null) return { kind: 'wait' };
  const cmp = compareVersions(reported, t.version);
  if (cmp === 0) return { kind: 'skip', detail: `already runs ${reported}` };
  if (cmp > 0 && !t.allowDowngrade) return { kind: 'skip', detail: `runs ${reported}, newer than ${t.version} (not added with --allow-downgrade)` };
  if (t.securityCounter < recordedCounter)
    return { kind: 'skip', detail: `recorded security counter ${recordedCounter} is above ${t.version}'s ${t.securityCounter}: the device would refuse it` };
  return { kind: 'push', rollback: cmp > 0 };
}
