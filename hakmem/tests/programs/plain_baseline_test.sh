#!/usr/bin/env bash
# The shared baseline (plain_baseline in lib.sh), through sqlite_test.sh, the
# quickest program test: a baseline recorded with other program versions is
# run again here, and one whose results differ from what the machine's
# sqlite3 produces makes the test fail, so the comparison really is against
# the baseline.
set -euo pipefail
[[ -n ${HAKMEM_SO:-} && -n ${BASELINE:-} ]] || { echo "FAIL: HAKMEM_SO and BASELINE must be set" >&2; exit 1; }
script=hakmem/tests/programs/sqlite_test.sh
work=${TEST_TMPDIR:-$(mktemp -d)}
fail() { echo "FAIL: $*" >&2; exit 1; }

# The real baseline, unpacked and altered two ways.
mkdir -p "${work}/real"
tar -C "${work}/real" -xf "${BASELINE}"
grep -q . "${work}/real/plain.version" || fail "the baseline records no version"

echo "=== a baseline from other program versions is run again"
mkdir -p "${work}/old"
cp -r "${work}/real/." "${work}/old/"
echo "sqlite3 0.0 (another machine)" >"${work}/old/plain.version"
echo "not what sqlite3 prints" >"${work}/old/plain.out"
(cd "${work}/old" && tar -cf "${work}/old.tar" plain*)
out=$(BASELINE="${work}/old.tar" TEST_TMPDIR="${work}/t1" bash "${script}" 2>&1) ||
  fail "the test failed with an outdated baseline: ${out}"
grep -q 'the shared baseline was made with other programs' <<<"${out}" || fail "no rerun reported: ${out}"

echo "=== a baseline of this machine's versions whose results differ fails the test"
mkdir -p "${work}/bad"
cp -r "${work}/real/." "${work}/bad/"
echo "a row sqlite3 never printed" >>"${work}/bad/plain.out"
(cd "${work}/bad" && tar -cf "${work}/bad.tar" plain*)
rc=0
out=$(BASELINE="${work}/bad.tar" TEST_TMPDIR="${work}/t2" bash "${script}" 2>&1) || rc=$?
((rc != 0)) || fail "the test passed against a baseline with a row too many"
grep -q 'from the shared baseline' <<<"${out}" || fail "the baseline was not used: ${out}"
grep -q 'sqlite3 output differs with hakmem preloaded' <<<"${out}" || fail "unexpected failure: ${out}"
echo "PASS"
