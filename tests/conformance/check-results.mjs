// Reads every checks.json the conformance suite wrote under a results directory and decides:
// each check must be SUCCESS (INFO is reported, never counted), and the checks an
// authorization server must pass must all be there. A WARNING fails too: the suite's own exit
// code lets warnings through, and the metadata scenario's Client ID Metadata Document check
// is a WARNING when it does not pass.
//
// usage: node check-results.mjs RESULTS_DIR

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const REQUIRED = [
  'authorization-server-metadata',
  'authorization-server-metadata-cimd',
  'authorization-code-grant',
];

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node check-results.mjs RESULTS_DIR');
  process.exit(2);
}

function files(d, depth = 0) {
  if (depth > 4) return [];
  return readdirSync(d).flatMap((name) => {
    const p = join(d, name);
    if (statSync(p).isDirectory()) return files(p, depth + 1);
    return name === 'checks.json' ? [p] : [];
  });
}

const checks = files(dir).flatMap((f) => JSON.parse(readFileSync(f, 'utf8')));
const problems = [];
for (const c of checks) {
  const note = c.errorMessage ? ` (${c.errorMessage})` : '';
  console.log(`  ${c.status.padEnd(8)} ${c.id}${note}`);
  if (c.status !== 'SUCCESS' && c.status !== 'INFO') {
    problems.push(`${c.id}: ${c.status}${note}`);
  }
}
for (const id of REQUIRED) {
  if (!checks.some((c) => c.id === id && c.status === 'SUCCESS')) {
    problems.push(`${id}: missing, or not SUCCESS`);
  }
}
const passed = checks.filter((c) => c.status === 'SUCCESS').length;
if (problems.length > 0) {
  console.error(`conformance: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`conformance: ${passed} checks passed, no failure, no warning`);
