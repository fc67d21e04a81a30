#!/usr/bin/env bash
# The variant independence check itself: it accepts a source that reads only
# build-mode defines, refuses one that reads HAKMEM_HARDENED (naming the
# file and the variant), and refuses bad arguments with a usage line.
set -euo pipefail
checker=hakmem/variant_independence_test.sh
args=(--variant fastcache:HAKMEM_FASTCACHE=1 --variant hardened:HAKMEM_FASTCACHE=1,HAKMEM_HARDENED=1
  --mode default:HAKMEM_DEBUG=1 --mode release:NDEBUG)
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$(bash "${checker}" "${args[@]}" hakmem/testdata/reads_no_variant.c 2>&1) ||
  fail "a source without variant defines was refused: ${out}"
grep -q '^PASS: 1 sources' <<<"${out}" || fail "no PASS line: ${out}"

rc=0
out=$(bash "${checker}" "${args[@]}" hakmem/testdata/reads_no_variant.c hakmem/testdata/reads_variant.c 2>&1) || rc=$?
((rc == 1)) || fail "a source reading HAKMEM_HARDENED: exit ${rc}, want 1: ${out}"
grep -q 'FAIL: hakmem/testdata/reads_variant.c preprocesses differently in variant hardened' <<<"${out}" ||
  fail "the report does not name the file and the variant: ${out}"

rc=0
out=$(bash "${checker}" --variant only:X=1 hakmem/testdata/reads_variant.c 2>&1) || rc=$?
((rc == 2)) && grep -q '^usage:' <<<"${out}" || fail "one variant and no mode: exit ${rc}, want 2 and a usage line: ${out}"
echo "PASS"
