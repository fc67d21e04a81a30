#!/usr/bin/env bash
# mtstress_test: the issue 11/15 modes, medium-xthread and calloc-swap run
# and verify, bad arguments exit 2 with the usage, and a malloc that writes
# into live blocks makes every one of those modes fail (exit 1, "heap
# corruption"); a calloc that returns a block not zeroed fails calloc-swap.
#   mtstress_test.sh MTSTRESS MTSTRESS_SYSTEM LIBCORRUPT_MALLOC
set -uo pipefail
mt="$1"
mt_system="$2"
corrupt="$3"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
fails=0
fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}

# calloc-swap also runs with more threads than there are CPUs.
cpus="$(getconf _NPROCESSORS_ONLN)"
over=$((2 * cpus + 1))
((over > 1024)) && over=1024
swap=("calloc-swap 1" "calloc-swap 8" "calloc-swap $over")

# mode and the thread counts it is run with.
modes=(
  "xthread-mixed 2" "xthread-mixed 3" "huge 1" "huge 2" "oversubscribed 16" "batch-lifo 1"
  "batch-lifo 2" "batch-fifo 1" "batch-fifo 2" "workingset 1" "oneway64 2" "medium-xthread 2"
  "${swap[@]}"
)

# run BINARY WHO MODE THREADS: one short run, its exit status and its report.
run() {
  local bin="$1" who="$2" mode="$3" threads="$4"
  "$bin" --mode "$mode" --threads "$threads" --seconds 0.2 >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  [[ $rc -eq 0 ]] || { fail "$mode t=$threads ($who): exit $rc: $(cat "$tmp/err")"; return; }
  local last
  last="$(tail -n 1 "$tmp/out")"
  [[ "$last" =~ ^Throughput\ =\ [1-9][0-9]*\ operations\ per\ second$ ]] ||
    fail "$mode t=$threads ($who): last line '$last'"
  grep -q '^peak RSS: [1-9][0-9]* KiB$' "$tmp/out" ||
    fail "$mode t=$threads ($who): no peak RSS line"
  grep -q "^mode: $mode, threads: $threads," "$tmp/out" || fail "$mode t=$threads ($who): header"
}

for entry in "${modes[@]}"; do
  read -r mode threads <<<"$entry"
  run "$mt" hakmem "$mode" "$threads"
done
# calloc-swap on glibc too: a failure on hakmem alone is hakmem's.
for entry in "${swap[@]}"; do
  read -r mode threads <<<"$entry"
  run "$mt_system" glibc "$mode" "$threads"
done

# The share handed to the neighbour is documented as half.
"$mt" --mode xthread-mixed --seconds 0.3 >"$tmp/out" 2>&1
pct="$(sed -n 's/^blocks freed by another thread: [0-9]* (\([0-9.]*\)%).*/\1/p' "$tmp/out")"
awk -v p="${pct:-0}" 'BEGIN { exit !(p >= 40 && p <= 60) }' ||
  fail "xthread-mixed: ${pct:-no} % freed by another thread, not about 50"
# medium-xthread's is 7 in 8.
"$mt" --mode medium-xthread --seconds 0.3 >"$tmp/out" 2>&1
pct="$(sed -n 's/^blocks freed by another thread: [0-9]* (\([0-9.]*\)%).*/\1/p' "$tmp/out")"
awk -v p="${pct:-0}" 'BEGIN { exit !(p >= 80 && p <= 92) }' ||
  fail "medium-xthread: ${pct:-no} % freed by another thread, not about 87.5"

# calloc-swap's frees are mostly remote; a thread alone for its whole round
# still frees about 37% of the time blocks of an earlier round's threads.
"$mt" --mode calloc-swap --threads 8 --seconds 0.3 >"$tmp/out" 2>&1
pct="$(sed -n 's/^blocks freed by another thread: [0-9]* (\([0-9.]*\)%).*/\1/p' "$tmp/out")"
awk -v p="${pct:-0}" 'BEGIN { exit !(p >= 25) }' ||
  fail "calloc-swap t=8: ${pct:-no} % freed by another thread, want 25 or more"
grep -Eq '^rounds: [1-9][0-9]*, each of 8 new threads' "$tmp/out" || fail "calloc-swap: no rounds line"

# oversubscribed defaults to 16 threads per online CPU.
want=$((16 * cpus))
((want > 1024)) && want=1024
"$mt" --mode oversubscribed --seconds 0.1 >"$tmp/out" 2>&1
grep -q "^mode: oversubscribed, threads: $want," "$tmp/out" ||
  fail "oversubscribed: default threads, want $want: $(head -n 1 "$tmp/out")"

bad=(
  "--mode xthread-mixed --threads 1"
  "--mode oneway64 --threads 4"
  "--mode oneway64 --max-size 128"
  "--mode huge --live 3"
  "--mode huge --max-size 1024"
  "--mode batch-lifo --live 10"
  "--mode batch-fifo --threads 0"
  "--mode workingset --max-size 15"
  "--mode xthread-mixed --live 3"
  "--mode oneway64 --live 5"
  "--mode workingset --seconds 0"
  "--mode medium-xthread --threads 3"
  "--mode medium-xthread --threads 1"
  "--mode medium-xthread --live 3"
  "--mode calloc-swap --max-size 4096"
  "--mode calloc-swap --live 65537"
  "--mode calloc-swap --threads 0"
  "--mode calloc-swap --threads 1025"
)
for args in "${bad[@]}"; do
  # shellcheck disable=SC2086
  "$mt" $args >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [[ $rc -eq 2 ]] || fail "'$args': exit $rc, want 2"
  grep -q '^usage: ' "$tmp/err" || fail "'$args': no usage on stderr"
  [[ -s "$tmp/out" ]] && fail "'$args': wrote to stdout"
done

"$mt" --help >"$tmp/out" 2>&1 || fail "--help: exit $?"
for mode in xthread-mixed huge oversubscribed batch-lifo batch-fifo workingset oneway64 \
  medium-xthread calloc-swap; do
  grep -q "^  $mode " "$tmp/out" || fail "usage does not describe $mode"
done

# A broken allocator fails every new mode.
for entry in "${modes[@]}"; do
  read -r mode threads <<<"$entry"
  LD_PRELOAD="$corrupt" "$mt_system" --mode "$mode" --threads "$threads" --seconds 2 \
    >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [[ $rc -eq 1 ]] || fail "$mode t=$threads on the broken malloc: exit $rc, want 1"
  grep -q "heap corruption" "$tmp/err" || fail "$mode t=$threads: corruption not reported"
done

# calloc-swap checks that calloc's blocks are zero.
CORRUPT_MALLOC_MODE=dirty-calloc LD_PRELOAD="$corrupt" "$mt_system" --mode calloc-swap \
  --threads 2 --seconds 2 >"$tmp/out" 2>"$tmp/err"
rc=$?
[[ $rc -eq 1 ]] || fail "calloc-swap on a calloc that does not zero: exit $rc, want 1"
grep -q "calloc must return zeroed memory" "$tmp/err" ||
  fail "calloc-swap: a block not zeroed by calloc was not reported: $(cat "$tmp/err")"

if ((fails > 0)); then
  echo "mtstress_test: $fails failure(s)" >&2
  exit 1
fi
echo "mtstress_test: all checks passed"
