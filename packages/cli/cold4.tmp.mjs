import { readFileSync } from 'node:fs';
import { applyPackage, nodeSha256, nodeCrc32 } from '@otadiff/patch-apply/host-apply';
const old = readFileSync(process.argv[2]); const pkg = readFileSync(process.argv[3]);
if (process.env.PRE) { const t = performance.now(); applyPackage(readFileSync('/work/main/.tmp/s.old'), readFileSync('/work/main/.tmp/s.pkg'), { sha256: nodeSha256, crc32: nodeCrc32, consumeOld: true }); console.log('pre', (performance.now() - t).toFixed(1)); }
for (let i = 0; i < 2; i++) { const t = performance.now(); applyPackage(i ? readFileSync(process.argv[2]) : old, pkg, { sha256: nodeSha256, crc32: nodeCrc32, consumeOld: true }); console.log('pass', i, (performance.now() - t).toFixed(1), 'ms'); }
