#!/usr/bin/env bash
# CPython's own regression tests with hakmem preloaded: allocation-heavy
# modules of the standard library's test suite, run with PYTHONMALLOC=malloc
# so that every Python object comes from malloc (hakmem), not pymalloc.
# Each module must pass with hakmem; only when one fails does the test run
# them without hakmem, to tell a fault of hakmem from one of the machine.
# Needs /usr/bin/python3 and Debian's libpython3.11-testsuite.
TEST_NAME=python
lib=hakmem/tests/programs/lib.sh
[[ -f ${lib} ]] || lib="$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=lib.sh
source "${lib}"

PY=/usr/bin/python3
[[ -x ${PY} ]] || die "${PY} not found (Debian package python3)"
plain "${PY}" -c 'import test.test_list' 2>/dev/null ||
  die "Python's test suite is missing (Debian package libpython3.11-testsuite)"

# The smallest set found whose runs execute every line of hakmem/core that
# 47 allocation-heavy modules (containers, strings, pickling, regular
# expressions, compression, XML) execute, with and without
# HAKMEM_GUARD_SAMPLE=1, in a third of their time: docs/TESTING.md, "The
# Python modules". Never candidates: test_unicode (fails in the sandbox even
# without hakmem), test_gc and test_weakref (timing and collection-order
# sensitive), anything networked.
MODULES=(
  test_dictviews test_functools test_dict test_list test_fstring test_zlib
  test_userlist test_heapq test_pickle test_long test_hashlib
)

# Test cases that cannot work in Bazel's sandbox, where /usr is read-only:
# test_pickle's module-race case writes next to the standard library.
IGNORE=(--ignore test_unpickle_module_race)

export PYTHONMALLOC=malloc
export PYTHONHASHSEED=0
export PYTHONDONTWRITEBYTECODE=1
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP

# run RUNNER NAME: python3 -m test over MODULES in its own directory; the
# per-module outcome lines go to NAME.results.
run() {
  local runner=$1 name=$2 rc=0
  mkdir -p "${WORK}/${name}"
  local cmd=("${PY}" -m test --timeout 300 "${IGNORE[@]}" "${MODULES[@]}")
  if [[ ${runner} == plain ]]; then
    (cd "${WORK}/${name}" && plain "${cmd[@]}") >"${WORK}/${name}.out" 2>"${WORK}/${name}.err" || rc=$?
  else
    (cd "${WORK}/${name}" && hakmem "${WORK}/${name}.stats" "${cmd[@]}") \
      >"${WORK}/${name}.out" 2>"${WORK}/${name}.err" || rc=$?
  fi
  # "[ 3/11] test_dict" lines give the order; the summary says what passed.
  # Keep what does not depend on timing: the result line and the lists of
  # tests that failed or were skipped.
  {
    echo "exit status ${rc}"
    grep -E '^(Tests result:|[0-9]+ tests? (OK|failed|skipped)|All [0-9]+ tests OK)' "${WORK}/${name}.out" || true
    awk '/^[0-9]+ tests? (failed|skipped|altered)/ { on = 1; print; next }
         on && /^    / { print; next } { on = 0 }' "${WORK}/${name}.out"
  } >"${WORK}/${name}.results"
  return 0
}

# passed NAME: the run's exit status was 0 and every module passed.
passed() {
  grep -qx 'exit status 0' "${WORK}/$1.results" && grep -q '^Tests result: SUCCESS' "${WORK}/$1.results"
}

# With hakmem first: every module must pass. The run without hakmem (as long
# again) only judges a failure, so a passing test skips it.
step "python3 -m test with hakmem (${#MODULES[@]} modules, PYTHONMALLOC=malloc)"
run hakmem hakmem
sed 's/^/  | /' "${WORK}/hakmem.results"
echo "  in ${SECONDS} s"
check "exit status 0 and every module passed (Tests result: SUCCESS)"
if ! passed hakmem; then
  step "python3 -m test without hakmem, to judge the failure"
  run plain plain
  sed 's/^/  | /' "${WORK}/plain.results"
  if ! passed plain; then
    show_tail "${WORK}/plain.out"
    die "the tests fail WITHOUT hakmem too: a problem of this machine, not of hakmem"
  fi
  show_tail "${WORK}/hakmem.out"
  show_tail "${WORK}/hakmem.err"
  same_file "${WORK}/plain.results" "${WORK}/hakmem.results" "the test results"
  die "the tests pass without hakmem and fail with it"
fi
expect_served "${WORK}/hakmem.stats" "${WORK}/hakmem.err"

finish
