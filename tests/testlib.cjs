// What every node suite shares (the mirror of tests/testlib.py): paths, the CLI under test,
// and the `ok NAME` / `not ok NAME: why` lines that tests/run.py counts.
'use strict';
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const DATA = path.resolve(ROOT, '../shared/data');
const CLI = process.env.CSASN_CLI || path.join(ROOT, 'build/csasn');

let failed = 0;
// Report one check; `why` is printed only when it fails.
function check(name, ok, why) {
  if (ok) console.log(`ok ${name}`);
  else {
    failed++;
    console.log(`not ok ${name}: ${why === undefined ? '' : why}`);
  }
  return ok;
}

// Run a suite's async main and exit: status 1 when a check failed, or when main threw
// (reported as one more failure, with its stack, so a crash can never pass silently).
function runMain(suite, main) {
  main().then(() => process.exit(failed ? 1 : 0), (e) => {
    console.log(`not ok ${suite}: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  });
}

module.exports = { ROOT, DATA, CLI, check, runMain };
