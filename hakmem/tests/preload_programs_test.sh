#!/usr/bin/env bash
# Preloads the hakmem shared library into real programs (Python and its own
# test suite, sort, gcc, git) and checks that each one behaves exactly as it
# does without hakmem, and that hakmem really served its allocations.
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
# malloc) and with PYTHONMALLOC=malloc (every object does).
for pymalloc in default malloc; do
  step "python3 -m test (PYTHONMALLOC=${pymalloc})"
  d="${WORK}/pytest_${pymalloc}"
  mkdir -p "${d}/plain" "${d}/hakmem"
  pyenv=()
  [[ ${pymalloc} == malloc ]] && pyenv=(PYTHONMALLOC=malloc)
  tests=(test_list test_dict test_set test_unicode)
  check "exit status 0 and 'Tests result: SUCCESS' from: python3 -m test -q ${tests[*]}"
  rc_hak=0
  (cd "${d}/hakmem" && hakmem "${pyenv[@]}" "${PY}" -m test -q "${tests[@]}") \
    >"${d}/hakmem.out" 2>"${d}/hakmem.err" || rc_hak=$?
  result_hak=$(grep '^Tests result:' "${d}/hakmem.out" | tail -n 1 || true)
  echo "  with hakmem:    exit ${rc_hak}, '${result_hak}'"
  # Only a failure needs the run without hakmem: it tells whose fault it is.
  if [[ ${rc_hak} != 0 || ${result_hak} != "Tests result: SUCCESS" ]]; then
    rc_plain=0
    (cd "${d}/plain" && plain "${pyenv[@]}" "${PY}" -m test -q "${tests[@]}") \
      >"${d}/plain.out" 2>"${d}/plain.err" || rc_plain=$?
    result_plain=$(grep '^Tests result:' "${d}/plain.out" | tail -n 1 || true)
    echo "  without hakmem: exit ${rc_plain}, '${result_plain}'"
    if [[ ${rc_plain} != 0 || ${result_plain} != "Tests result: SUCCESS" ]]; then
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
done

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

# ---------------------------------------------------------------------------
step "gcc -O2 -c of a generated C file"
mkdir -p "${WORK}/gcc/plain" "${WORK}/gcc/hakmem"
plain awk 'BEGIN {
  print "#include <stdlib.h>"
  print "#include <string.h>"
  print "struct node { struct node *next; long v[4]; };"
  for (i = 0; i < 400; i++) {
    printf "long f%d(const long *a, int n) {\n", i
    printf "  long acc = %d;\n", i * 7 + 1
    printf "  for (int k = 0; k < n; k++) {\n"
    printf "    switch ((a[k] + %d) %% 5) {\n", i
    printf "    case 0: acc += a[k] * %d; break;\n", i % 13 + 2
    printf "    case 1: acc ^= a[k] << %d; break;\n", i % 7
    printf "    case 2: acc -= a[k] / %d; break;\n", i % 11 + 1
    printf "    default: acc = acc * 31 + k;\n"
    printf "    }\n  }\n"
    if (i > 0) printf "  if (n > 1) acc += f%d(a + 1, n - 1) & 0xff;\n", i - 1
    printf "  return acc;\n}\n"
    printf "struct node *g%d(int n) {\n", i
    printf "  struct node *h = 0;\n"
    printf "  for (int k = 0; k < n; k++) {\n"
    printf "    struct node *x = malloc(sizeof *x);\n"
    printf "    if (!x) return h;\n"
    printf "    memset(x->v, %d, sizeof x->v);\n", i % 256
    printf "    x->next = h; h = x;\n  }\n  return h;\n}\n"
  }
}' >"${WORK}/gcc/gen.c"
cp "${WORK}/gcc/gen.c" "${WORK}/gcc/plain/gen.c"
cp "${WORK}/gcc/gen.c" "${WORK}/gcc/hakmem/gen.c"
check "object file of $(grep -c '^long f' "${WORK}/gcc/gen.c") + $(grep -c '^struct node \*g' "${WORK}/gcc/gen.c") functions byte-identical"
(cd "${WORK}/gcc/plain" && plain gcc -O2 -frandom-seed=hakmem -c gen.c -o gen.o) ||
  die "gcc failed without hakmem"
(cd "${WORK}/gcc/hakmem" && hakmem gcc -O2 -frandom-seed=hakmem -c gen.c -o gen.o) \
  2>"${WORK}/gcc/compile.err" || { tail -n 20 "${WORK}/gcc/compile.err" >&2;
  die "gcc failed with hakmem preloaded"; }
plain nm "${WORK}/gcc/plain/gen.o" >"${WORK}/gcc/nm.plain"
plain nm "${WORK}/gcc/hakmem/gen.o" >"${WORK}/gcc/nm.hakmem"
same_file "${WORK}/gcc/nm.plain" "${WORK}/gcc/nm.hakmem" "nm of the object file"
same_file "${WORK}/gcc/plain/gen.o" "${WORK}/gcc/hakmem/gen.o" "the object file"
expect_served "${WORK}/gcc/compile.err"

step "gcc compile, link and run a small program"
cat >"${WORK}/gcc/prog.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct item { char *name; size_t len; };

static int by_name(const void *a, const void *b) {
  const struct item *x = a, *y = b;
  return strcmp(x->name, y->name);
}

int main(void) {
  unsigned long seed = 12345;
  size_t n = 50000, cap = 16, count = 0;
  struct item *items = malloc(cap * sizeof *items);
  if (!items) return 1;
  for (size_t i = 0; i < n; i++) {
    seed = seed * 6364136223846793005UL + 1442695040888963407UL;
    size_t len = (seed >> 33) % 200 + 1;
    if (count == cap) {
      cap *= 2;
      struct item *grown = realloc(items, cap * sizeof *items);
      if (!grown) return 1;
      items = grown;
    }
    char *s = malloc(len + 1);
    if (!s) return 1;
    for (size_t k = 0; k < len; k++) s[k] = (char)('a' + (seed >> (k % 40)) % 26);
    s[len] = '\0';
    items[count].name = s;
    items[count].len = len;
    count++;
    if (i % 3 == 2) {  // drop one, keep the rest
      size_t victim = (seed >> 20) % count;
      free(items[victim].name);
      items[victim] = items[--count];
    }
  }
  qsort(items, count, sizeof *items, by_name);
  unsigned long h = 1469598103934665603UL, total = 0;
  for (size_t i = 0; i < count; i++) {
    for (const char *p = items[i].name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211UL;
    total += items[i].len;
    free(items[i].name);
  }
  free(items);
  printf("count %zu total %lu hash %016lx\n", count, total, h);
  return 0;
}
EOF
cp "${WORK}/gcc/prog.c" "${WORK}/gcc/plain/prog.c"
cp "${WORK}/gcc/prog.c" "${WORK}/gcc/hakmem/prog.c"
(cd "${WORK}/gcc/plain" && plain gcc -O2 -frandom-seed=hakmem prog.c -o prog && plain ./prog) \
  >"${WORK}/gcc/prog.plain" || die "building or running the program failed without hakmem"
check "program built and run with hakmem prints the same as without"
(cd "${WORK}/gcc/hakmem" && hakmem gcc -O2 -frandom-seed=hakmem prog.c -o prog) \
  2>"${WORK}/gcc/link.err" || { tail -n 20 "${WORK}/gcc/link.err" >&2;
  die "gcc compile+link failed with hakmem preloaded"; }
expect_served "${WORK}/gcc/link.err"
(cd "${WORK}/gcc/hakmem" && hakmem ./prog) >"${WORK}/gcc/prog.hakmem" \
  2>"${WORK}/gcc/run.err" || { tail -n 20 "${WORK}/gcc/run.err" >&2;
  die "the program failed with hakmem preloaded"; }
same_file "${WORK}/gcc/prog.plain" "${WORK}/gcc/prog.hakmem" "the program's output"
expect_served "${WORK}/gcc/run.err"
check "executables linked with and without hakmem byte-identical"
same_file "${WORK}/gcc/plain/prog" "${WORK}/gcc/hakmem/prog" "the linked executable"
sed 's/^/  | /' "${WORK}/gcc/prog.plain"

# ---------------------------------------------------------------------------
step "git init/add/commit/log/gc on a generated repository"
export GIT_CONFIG_NOSYSTEM=1
export GIT_CONFIG_GLOBAL="${WORK}/home/gitconfig"
: >"${GIT_CONFIG_GLOBAL}"
export GIT_AUTHOR_NAME="Hak Mem" GIT_AUTHOR_EMAIL="hakmem@example.invalid"
export GIT_COMMITTER_NAME="Hak Mem" GIT_COMMITTER_EMAIL="hakmem@example.invalid"

# make_repo RUNNER DIR: builds the same history with every git command run
# through RUNNER (plain or hakmem); stderr goes to DIR.err. (The body runs in
# a subshell on the left of ||, where set -e is off: every command is checked.)
make_repo() {
  local run=$1 dir=$2 name
  name=$(basename "${dir}")
  mkdir -p "${dir}"
  (
    cd "${dir}" || exit 1
    "${run}" git init -q -b main . || exit 1
    for c in $(seq 1 40); do
      for f in $(seq 1 $((c % 7 + 3))); do
        mkdir -p "dir$((f % 5))" || exit 1
        plain awk -v c="${c}" -v f="${f}" 'BEGIN {
          for (i = 0; i < 200 + 37 * f; i++) printf "file %d line %d rev %d %d\n", f, i, (i % 10 == 0 ? c : 0), i * f
        }' >"dir$((f % 5))/file${f}.txt" || exit 1
      done
      export GIT_AUTHOR_DATE="$((1700000000 + c * 3600)) +0000"
      export GIT_COMMITTER_DATE="${GIT_AUTHOR_DATE}"
      "${run}" git add -A || exit 1
      "${run}" git commit -q -m "commit ${c}" -m "generated change number ${c}" || exit 1
    done
    "${run}" git log --format=%H >"../${name}.log_before_gc" || exit 1
    "${run}" git gc --aggressive --prune=now --quiet || exit 1
    "${run}" git fsck --full --no-progress >"../${name}.fsck" || exit 1
    "${run}" git log --format=%H >"../${name}.log" || exit 1
    "${run}" git ls-tree -r HEAD >"../${name}.tree" || exit 1
  ) 2>"${dir}.err" || { tail -n 20 "${dir}.err" >&2; return 1; }
}
make_repo plain "${WORK}/git/plain" || die "building the repository failed without hakmem"
check "git log --format=%H (before and after gc) and ls-tree -r HEAD same as without hakmem; fsck clean"
make_repo hakmem "${WORK}/git/hakmem" || die "a git command failed with hakmem preloaded"
[[ $(wc -l <"${WORK}/git/plain.log") -eq 40 ]] || die "expected 40 commits in the log"
same_file "${WORK}/git/plain.log_before_gc" "${WORK}/git/hakmem.log_before_gc" "git log before gc"
same_file "${WORK}/git/plain.log" "${WORK}/git/hakmem.log" "git log after gc"
same_file "${WORK}/git/plain.tree" "${WORK}/git/hakmem.tree" "git ls-tree -r HEAD"
expect_served "${WORK}/git/hakmem.err"
echo "  | HEAD $(head -n 1 "${WORK}/git/hakmem.log")"

echo
echo "PASS: every program behaved the same with hakmem preloaded"
