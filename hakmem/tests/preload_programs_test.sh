#!/usr/bin/env bash
# Preloads the hakmem shared library into real programs (Python and its own
# test suite with pymalloc, an allocation-heavy script with pymalloc and
# without; sort) and checks that each one behaves exactly as it does without
# hakmem, and that hakmem really served its allocations. gcc and git are the
# programs suite's (//hakmem/tests/programs: gcc_test builds, links and runs
# a 22-file program, git_test a 26-commit history with gc, fsck and blame),
# and so is Python's suite without pymalloc (python_test, whose modules
# execute every line of hakmem/core these did but one), which covers what
# this test ran of them.
#
# Usage: preload_programs_test.sh path/to/libhakmem.so
#   The path is relative to the current directory (the runfiles directory
#   under `bazel test`). All work happens under $TEST_TMPDIR.
#
# Test-only switch, for running this script by hand against another
# allocator (e.g. jemalloc) that prints no hakmem report:
#   HAKTEST_SKIP_STATS_CHECK=1   skip the "hakmem served it" checks.
# Never set it in BUILD.
set -euo pipefail

STEP="setup"

die() {
  echo "FAIL [${STEP}]: $*" >&2
  exit 1
}

step() {
  STEP=$1
  echo
  echo "=== ${STEP}"
}

check() {
  echo "  check: $*"
}

[[ $# -ge 1 ]] || die "usage: $0 path/to/libhakmem.so"
[[ -f $1 ]] || die "preload library '$1' not found (cwd $(pwd))"
SO=$(realpath -- "$1")

WORK="${TEST_TMPDIR:-$(mktemp -d)}/preload_programs"
rm -rf "${WORK}"
mkdir -p "${WORK}/home" "${WORK}/tmp"
export HOME="${WORK}/home"
# Private temporary directory: Python's test runner names its scratch
# directory after its pid, and sandboxed tests running side by side in their
# own pid namespaces would otherwise share (and delete) it under /tmp.
export TMPDIR="${WORK}/tmp"
export LC_ALL=C
export TZ=UTC
export PYTHONHASHSEED=0
export PYTHONDONTWRITEBYTECODE=1
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONMALLOC LD_PRELOAD HAKMEM_STATS
PY=/usr/bin/python3

echo "preload library: ${SO}"
echo "work directory:  ${WORK}"

# ---------------------------------------------------------------------------
# The one place that knows the format of hakmem's exit report (core/stats.c,
# hak_stats_print): a header line "hakmem stats (pid ...)" followed, among
# others, by "total allocs <N> frees <M> ...". Succeeds if some report in the
# file shows N > 0.
hakmem_report_shows_allocations() {
  local file=$1
  grep -q '^hakmem stats' "${file}" &&
    grep -Eq '^total allocs [1-9][0-9]*( |$)' "${file}"
}

# Checks that a preloaded run's stderr proves hakmem was loaded and used.
expect_served() {
  local errfile=$1
  if grep -q 'cannot be preloaded' "${errfile}"; then
    sed -n '1,5p' "${errfile}" >&2
    die "the dynamic loader refused to preload ${SO}"
  fi
  if [[ ${HAKTEST_SKIP_STATS_CHECK:-0} == 1 ]]; then
    check "hakmem statistics report (SKIPPED: HAKTEST_SKIP_STATS_CHECK=1)"
    return 0
  fi
  check "HAKMEM_STATS=1 report shows hakmem served allocations"
  if ! hakmem_report_shows_allocations "${errfile}"; then
    echo "---- stderr of the preloaded run (last 30 lines):" >&2
    tail -n 30 "${errfile}" >&2
    die "no hakmem statistics report with a nonzero 'total allocs' on stderr"
  fi
}

# Runs a command without hakmem.
plain() {
  env -u LD_PRELOAD -u HAKMEM_STATS "$@"
}

# Runs a command (and every child it starts) with hakmem preloaded and its
# exit report enabled.
hakmem() {
  env LD_PRELOAD="${SO}" HAKMEM_STATS=1 "$@"
}

# same_file A B WHAT: byte-for-byte comparison.
same_file() {
  if ! cmp -s -- "$1" "$2"; then
    echo "---- first differences (${1} vs ${2}):" >&2
    diff -- "$1" "$2" | head -n 20 >&2 || true
    die "$3 differs with hakmem preloaded"
  fi
}

# ---------------------------------------------------------------------------
# Python's own regression tests, with pymalloc (large objects only reach
# malloc; python_test runs the suite with every object from malloc).
step "python3 -m test (pymalloc)"
d="${WORK}/pytest"
mkdir -p "${d}/plain" "${d}/hakmem"
tests=(test_list test_dict test_set test_unicode)
check "exit status 0 and 'Tests result: SUCCESS' from: python3 -m test -q ${tests[*]}"
# suite_passes WHO LABEL: runs the suite in ${d}/WHO through the function WHO
# (hakmem or plain), prints its exit status and result line, and succeeds if
# both say it passed.
suite_passes() {
  local rc=0 result
  (cd "${d}/$1" && "$1" "${PY}" -m test -q "${tests[@]}") >"${d}/$1.out" 2>"${d}/$1.err" || rc=$?
  result=$(grep '^Tests result:' "${d}/$1.out" | tail -n 1 || true)
  echo "  $2 exit ${rc}, '${result}'"
  [[ ${rc} == 0 && ${result} == "Tests result: SUCCESS" ]]
}
# Only a failure needs the run without hakmem: it tells whose fault it is.
if ! suite_passes hakmem "with hakmem:   "; then
  if ! suite_passes plain "without hakmem:"; then
    echo "---- output without hakmem (last 60 lines):" >&2
    tail -n 60 "${d}/plain.out" >&2
    tail -n 20 "${d}/plain.err" >&2
    die "the python tests fail WITHOUT hakmem: a problem of this machine, not of hakmem (is libpython3.11-testsuite installed?)"
  fi
  tail -n 40 "${d}/hakmem.out" >&2
  tail -n 20 "${d}/hakmem.err" >&2
  die "the python tests pass without hakmem and fail with it"
fi
expect_served "${d}/hakmem.err"

# ---------------------------------------------------------------------------
step "python3 -c allocation-heavy script"
cat >"${WORK}/alloc_heavy.py" <<'EOF'
import hashlib
import json
import random

rng = random.Random(20240611)
digest = hashlib.sha256()

# Churn of byte strings of very different sizes, some kept, most dropped.
pool = []
for i in range(120000):
    r = rng.random()
    if r < 0.70:
        n = rng.randrange(0, 128)
    elif r < 0.97:
        n = rng.randrange(128, 8192)
    elif r < 0.999:
        n = rng.randrange(8192, 200000)
    else:
        n = rng.randrange(1 << 20, 3 << 20)
    blob = bytes([i & 0xFF]) * n
    pool.append(blob)
    if len(pool) > 700:
        victim = pool.pop(rng.randrange(len(pool)))
        digest.update(len(victim).to_bytes(4, "little"))
        digest.update(victim[:16])
print("pool", len(pool), sum(len(b) for b in pool))

# Growing buffers (realloc), then shrinking ones.
buf = bytearray()
for i in range(20000):
    buf += bytes([i % 251]) * (i % 300)
digest.update(buf)
while len(buf) > 1000:
    del buf[len(buf) // 2:]
    digest.update(buf[-8:])
print("buffer", len(buf))

# Dicts, sets and lists of many small objects.
table = {}
for i in range(150000):
    key = "k%06d-%s" % (rng.randrange(10**6), "x" * (i % 17))
    table[key] = [i, str(i), (i, -i)]
for key in list(table)[::3]:
    del table[key]
words = sorted(table, key=lambda k: (len(k), k))
digest.update("".join(words[:2000]).encode())
print("table", len(table), words[0], words[-1])
members = {frozenset(range(i % 40)) for i in range(30000)}
print("sets", len(members))

# JSON round trip of a nested structure.
doc = {"items": [{"id": i, "name": "n" * (i % 50), "tags": list(range(i % 9))}
                 for i in range(40000)]}
text = json.dumps(doc, sort_keys=True)
back = json.loads(text)
digest.update(text.encode())
print("json", len(text), back == doc)

print("digest", digest.hexdigest())
EOF
for pymalloc in default malloc; do
  pyenv=()
  [[ ${pymalloc} == malloc ]] && pyenv=(PYTHONMALLOC=malloc)
  check "stdout identical with and without hakmem (PYTHONMALLOC=${pymalloc})"
  plain "${pyenv[@]}" "${PY}" -c "$(cat "${WORK}/alloc_heavy.py")" \
    >"${WORK}/py_${pymalloc}.plain" 2>"${WORK}/py_${pymalloc}.plain.err" ||
    die "the script failed without hakmem (PYTHONMALLOC=${pymalloc})"
  hakmem "${pyenv[@]}" "${PY}" -c "$(cat "${WORK}/alloc_heavy.py")" \
    >"${WORK}/py_${pymalloc}.hakmem" 2>"${WORK}/py_${pymalloc}.hakmem.err" ||
    { tail -n 20 "${WORK}/py_${pymalloc}.hakmem.err" >&2;
      die "the script failed with hakmem preloaded (PYTHONMALLOC=${pymalloc})"; }
  same_file "${WORK}/py_${pymalloc}.plain" "${WORK}/py_${pymalloc}.hakmem" \
    "python3 -c output (PYTHONMALLOC=${pymalloc})"
  expect_served "${WORK}/py_${pymalloc}.hakmem.err"
done
sed 's/^/  | /' "${WORK}/py_default.plain"

# ---------------------------------------------------------------------------
step "sort of 200000 generated lines"
# Generated without hakmem, deterministically (fixed awk seed).
plain awk 'BEGIN {
  srand(42)
  for (i = 0; i < 200000; i++) {
    n = int(rand() * 40) + 1
    s = ""
    for (j = 0; j < n; j++) s = s sprintf("%c", 97 + int(rand() * 26))
    printf "%s %d\n", s, int(rand() * 1000000)
  }
}' >"${WORK}/lines.txt"
check "input has 200000 lines"
[[ $(wc -l <"${WORK}/lines.txt") -eq 200000 ]] || die "generated input is not 200000 lines"
mkdir -p "${WORK}/sorttmp"
plain sort "${WORK}/lines.txt" >"${WORK}/sorted.plain"
plain sort -k2,2n -k1,1 "${WORK}/lines.txt" >"${WORK}/sorted_num.plain"
check "sort output byte-identical (in-memory sort)"
hakmem sort "${WORK}/lines.txt" >"${WORK}/sorted.hakmem" 2>"${WORK}/sort.err" ||
  die "sort failed with hakmem preloaded"
same_file "${WORK}/sorted.plain" "${WORK}/sorted.hakmem" "sort output"
expect_served "${WORK}/sort.err"
check "sort output byte-identical (2 threads, 1 MiB buffer, temporary files)"
hakmem sort --parallel=2 -S 1M -T "${WORK}/sorttmp" "${WORK}/lines.txt" \
  >"${WORK}/sorted_small.hakmem" 2>"${WORK}/sort_small.err" ||
  die "sort --parallel=2 -S 1M failed with hakmem preloaded"
same_file "${WORK}/sorted.plain" "${WORK}/sorted_small.hakmem" "sort -S 1M output"
expect_served "${WORK}/sort_small.err"
check "numeric key sort output byte-identical"
hakmem sort -k2,2n -k1,1 "${WORK}/lines.txt" >"${WORK}/sorted_num.hakmem" \
  2>"${WORK}/sort_num.err" || die "sort -k2,2n failed with hakmem preloaded"
same_file "${WORK}/sorted_num.plain" "${WORK}/sorted_num.hakmem" "sort -k2,2n output"
expect_served "${WORK}/sort_num.err"

echo
echo "PASS: every program behaved the same with hakmem preloaded"
