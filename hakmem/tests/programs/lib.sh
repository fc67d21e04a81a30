# Shared by the real-program tests of this directory (sourced, not run).
#
# Each test runs a program without hakmem and with libhakmem*.so preloaded,
# compares what it produced, and checks from hakmem's exit report that
# hakmem really served the allocations.
#
# Environment (set by hakmem_variant_sh_test, see //hakmem:variants.bzl):
#   HAKMEM_SO       path of the preload library, relative to the current
#                   directory (the runfiles root under `bazel test`)
#   HAKMEM_VARIANT  fastcache | nofastcache | hardened (informational)
# By hand, from the repository root:
#   bazel build //hakmem:libhakmem.so
#   HAKMEM_SO=bazel-bin/hakmem/libhakmem.so hakmem/tests/programs/sqlite_test.sh

set -euo pipefail

STEP="setup"
TEST_NAME=${TEST_NAME:-$(basename "$0" .sh)}

DIED=""
die() {
  DIED=1
  echo "FAIL [${TEST_NAME}: ${STEP}]: $*" >&2
  exit 1
}

# At exit: the test's own cleanup (CLEANUP, a command, e.g. stopping a server
# it started), then, if a command failed under set -e without die(), say
# which step it was and show STEP_LOG, the log that step writes.
CLEANUP=""
STEP_LOG=""
on_exit() {
  local rc=$?
  if [[ -n ${CLEANUP} ]]; then ${CLEANUP} || true; fi
  if ((rc != 0)) && [[ -z ${DIED} ]]; then
    echo "FAIL [${TEST_NAME}: ${STEP}]: a command failed (exit status ${rc})" >&2
    if [[ -n ${STEP_LOG} && -f ${STEP_LOG} ]]; then
      echo "---- ${STEP_LOG} (last 30 lines):" >&2
      tail -n 30 "${STEP_LOG}" >&2 || true
    fi
  fi
}
trap on_exit EXIT

step() {
  STEP=$1
  echo
  echo "=== ${STEP}"
}

check() {
  echo "  check: $*"
}

# BASELINE_OUT set: the script makes only its run without hakmem, for the
# <program>_baseline genrule (see plain_baseline), and needs no library.
if [[ -z ${BASELINE_OUT:-} ]]; then
  [[ -n ${HAKMEM_SO:-} ]] || die "HAKMEM_SO is not set (path of libhakmem*.so)"
  [[ -f ${HAKMEM_SO} ]] || die "preload library '${HAKMEM_SO}' not found (cwd $(pwd))"
  SO=$(realpath -- "${HAKMEM_SO}")
else
  SO=""
fi

WORK="${TEST_TMPDIR:-$(mktemp -d)}/${TEST_NAME}"
rm -rf "${WORK}"
mkdir -p "${WORK}/home" "${WORK}/tmp"
# A private HOME and TMPDIR: nothing leaks in from the machine, and tests
# running side by side never share scratch files.
export HOME="${WORK}/home"
export TMPDIR="${WORK}/tmp"
export LC_ALL=C
export TZ=UTC
unset LD_PRELOAD HAKMEM_STATS HAKMEM_STATS_FD

echo "test:            ${TEST_NAME} (variant ${HAKMEM_VARIANT:-?})"
echo "preload library: ${SO:-none (the baseline without hakmem only)}"
echo "work directory:  ${WORK}"

need() {
  local tool
  for tool in "$@"; do
    command -v "${tool}" >/dev/null 2>&1 || die "'${tool}' is not installed (see tools/setup.sh)"
  done
}

# Runs a command without hakmem.
plain() {
  env -u LD_PRELOAD -u HAKMEM_STATS -u HAKMEM_STATS_FD "$@"
}

# hakmem STATS_FILE COMMAND...: runs a command, and every process it starts,
# with hakmem preloaded; each process appends its exit report to STATS_FILE
# (through descriptor 9, which children inherit).
hakmem() {
  local stats=$1
  shift
  env LD_PRELOAD="${SO}" HAKMEM_STATS=1 HAKMEM_STATS_FD=9 "$@" 9>>"${stats}"
}

# expect_served STATS_FILE [STDERR_FILE]: hakmem's report (core/stats.c,
# hak_stats_print: a "hakmem stats (pid ...)" header, then among others
# "total allocs N frees M ...") must show N > 0 for some process, and with
# HAKMEM_GUARD_SAMPLE set, "guarded allocs G" G > 0 for some process.
expect_served() {
  local stats=$1 err=${2:-}
  if [[ -n ${err} && -f ${err} ]] && grep -q 'cannot be preloaded' "${err}"; then
    sed -n '1,5p' "${err}" >&2
    die "the dynamic loader refused to preload ${SO}"
  fi
  check "hakmem served the allocations (HAKMEM_STATS report: total allocs > 0)"
  local reports most
  reports=$(grep -c '^hakmem stats' "${stats}" 2>/dev/null || true)
  most=$(awk '$1 == "total" && $2 == "allocs" && $3 + 0 > m { m = $3 + 0 } END { print m + 0 }' \
    "${stats}" 2>/dev/null || echo 0)
  if ((${reports:-0} == 0)) || ! grep -Eq '^total allocs [1-9][0-9]*( |$)' "${stats}"; then
    echo "---- ${stats} (first 20 lines):" >&2
    head -n 20 "${stats}" >&2 || true
    die "no hakmem report with a nonzero 'total allocs' in ${stats}"
  fi
  echo "    ${reports} process report(s); the busiest made ${most} allocations"
  # With the guarded pool on, it must have served some of them.
  if [[ ${HAKMEM_GUARD_SAMPLE:-0} != 0 ]]; then
    check "the guarded pool served allocations (HAKMEM_GUARD_SAMPLE=${HAKMEM_GUARD_SAMPLE})"
    local guarded
    guarded=$(awk '$1 == "guarded" && $2 == "allocs" && $3 + 0 > m { m = $3 + 0 } END { print m + 0 }' \
      "${stats}" 2>/dev/null || echo 0)
    ((${guarded:-0} > 0)) || die "no hakmem report shows a guarded allocation in ${stats}"
    echo "    the busiest process guarded ${guarded} allocations"
  fi
}

# same_file A B WHAT: byte-for-byte comparison of what the plain and the
# hakmem runs produced.
same_file() {
  if ! cmp -s -- "$1" "$2"; then
    echo "---- first differences (${1} vs ${2}):" >&2
    diff -- "$1" "$2" | head -n 20 >&2 || true
    die "$3 differs with hakmem preloaded"
  fi
}

# plain_baseline VERSION COMMAND...: the run without hakmem, whose results
# the script leaves in WORK as plain and plain.* (files or directories). It
# is the same for every variant, so a genrule (<program>_baseline in BUILD)
# makes it once: with BASELINE_OUT set (an absolute path), this runs COMMAND, packs the results
# and VERSION (the programs' versions) into that tar file and ends the script.
# A test given BASELINE (the tar's path) unpacks it instead of running
# COMMAND, unless the programs' versions differ from the ones recorded (a
# machine upgraded under a warm Bazel cache): then it runs COMMAND itself.
plain_baseline() {
  local version=$1 recorded tarfile
  shift
  if [[ -n ${BASELINE_OUT:-} ]]; then
    "$@"
    printf '%s\n' "${version}" >"${WORK}/plain.version"
    (cd "${WORK}" && tar --sort=name -cf "${BASELINE_OUT}" plain*) ||
      die "packing the baseline into ${BASELINE_OUT} failed"
    echo "baseline written: ${BASELINE_OUT}"
    exit 0
  fi
  if [[ -n ${BASELINE:-} ]]; then
    [[ -f ${BASELINE} ]] || die "baseline '${BASELINE}' not found (cwd $(pwd))"
    tarfile=$(realpath -- "${BASELINE}")
    (cd "${WORK}" && tar -xf "${tarfile}") ||
      die "unpacking the baseline ${BASELINE} failed"
    recorded=$(cat "${WORK}/plain.version" 2>/dev/null || true)
    if [[ ${recorded} == "${version}" ]]; then
      echo "  from the shared baseline (${BASELINE}): ${version//$'\n'/; }"
      return 0
    fi
    echo "  the shared baseline was made with other programs (${recorded//$'\n'/; }); running it here"
    rm -rf "${WORK}/plain" "${WORK}"/plain.*
  fi
  "$@"
}

# show_tail FILE: the end of a log, for a failure report.
show_tail() {
  echo "---- ${1} (last 30 lines):" >&2
  tail -n 30 "$1" >&2 || true
}

# A free TCP port on 127.0.0.1 (the kernel's choice; released right away, so
# a caller retries if something else takes it first).
free_port() {
  plain /usr/bin/python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Seconds since the test started, for the timing summary.
SECONDS=0
finish() {
  echo
  echo "PASS: ${TEST_NAME} (variant ${HAKMEM_VARIANT:-?}) behaved the same with hakmem preloaded, ${SECONDS} s"
}
