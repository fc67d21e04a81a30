#!/usr/bin/env bash
# Runs each committed seed input once on one variant's alloc_fuzzer (no
# fuzzing: libFuzzer given files runs exactly those, and so does the replay
# main of the default build).
#
# Usage (from the runfiles root, as `bazel test` starts it):
#   fuzz_smoke_test.sh VARIANT FUZZER    e.g. hardened hakmem/fuzz/alloc_fuzzer_hardened
set -euo pipefail

die() {
  echo "FAIL [fuzz smoke ${variant:-?}]: $*" >&2
  exit 1
}

[[ $# -eq 2 ]] || die "usage: fuzz_smoke_test.sh VARIANT FUZZER"
variant=$1
fuzzer="${PWD}/$2"
fuzz="${PWD}/hakmem/fuzz"
work="${TEST_TMPDIR:-$(mktemp -d)}/fuzz_${variant}"
rm -rf "${work}"
mkdir -p "${work}"
[[ -x ${fuzzer} ]] || die "${fuzzer} is not an executable"

seeds=("${fuzz}"/corpus/*)
[[ -e ${seeds[0]} ]] || die "no seed inputs in ${fuzz}/corpus"
echo "=== replay ${#seeds[@]} seed inputs on $2"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=${fuzz}/ubsan.supp"
rc=0
(cd "${work}" && "${fuzzer}" -timeout=30 -rss_limit_mb=2048 "${seeds[@]}") \
  >"${work}/replay.log" 2>&1 || rc=$?
ran=$(grep -c '^Executed ' "${work}/replay.log" || true)
if ((rc != 0)); then
  tail -n 60 "${work}/replay.log" >&2
  last=$(grep '^Running: ' "${work}/replay.log" | tail -n 1 | sed 's/^Running: //')
  die "a seed input failed (exit ${rc}): ${last:-?}"
fi
grep '^Executed ' "${work}/replay.log" | sed "s|${fuzz}/||; s/^/  /"
((ran == ${#seeds[@]})) || die "ran ${ran} of ${#seeds[@]} seed inputs"
echo "PASS: ${ran} seed inputs replayed on the ${variant} variant"
