#!/usr/bin/env bash
# mtstress_test: the issue 11/15 modes and medium-xthread run and verify,
# bad arguments exit 2 with the usage, and a malloc that writes into live
# blocks makes every one of those modes fail (exit 1, "heap corruption").
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

# mode and the thread counts it is run with.
modes=(
  "xthread-mixed 2" "xthread-mixed 3" "huge 1" "huge 2" "oversubscribed 16" "batch-lifo 1"
  "batch-lifo 2" "batch-fifo 1" "batch-fifo 2" "workingset 1" "oneway64 2" "medium-xthread 2"
)

for entry in "${modes[@]}"; do
  read -r mode threads <<<"$entry"
  "$mt" --mode "$mode" --threads "$threads" --seconds 0.2 >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [[ $rc -eq 0 ]] || { fail "$mode t=$threads: exit $rc: $(cat "$tmp/err")"; continue; }
  last="$(tail -n 1 "$tmp/out")"
  [[ "$last" =~ ^Throughput\ =\ [1-9][0-9]*\ operations\ per\ second$ ]] ||
    fail "$mode t=$threads: last line '$last'"
  grep -q '^peak RSS: [1-9][0-9]* KiB$' "$tmp/out" || fail "$mode t=$threads: no peak RSS line"
  grep -q "^mode: $mode, threads: $threads," "$tmp/out" || fail "$mode t=$threads: header"
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

# oversubscribed defaults to 16 threads per online CPU.
want=$((16 * $(getconf _NPROCESSORS_ONLN)))
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
  medium-xthread; do
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

if ((fails > 0)); then
  echo "mtstress_test: $fails failure(s)" >&2
  exit 1
fi
echo "mtstress_test: all checks passed"
