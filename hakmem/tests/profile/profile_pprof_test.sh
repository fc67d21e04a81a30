#!/bin/bash
# The heap profiler end to end: profile_sites allocates from site_a and
# site_b in a 3:1 ratio of bytes and keeps them 1:1; with hakmem preloaded
# and HAKMEM_PROF=1 it writes a profile that the real pprof (go tool pprof)
# must read, rank and symbolise in those proportions, within 10%. The exit
# profile (HAKMEM_PROF_FILE) must be readable too.
set -euo pipefail

prog="$1"
so="$PWD/$HAKMEM_SO"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"

go=""
for g in "$(command -v go || true)" /usr/bin/go /usr/lib/go/bin/go /usr/lib/go-1.19/bin/go; do
  if [[ -n "$g" && -x "$g" ]]; then go="$g"; break; fi
done
[[ -n "$go" ]] || { echo "go not found: install golang-go (tools/setup.sh)"; exit 1; }

export HOME="$tmp" PPROF_TMPDIR="$tmp" GOCACHE="$tmp/gocache" GOPATH="$tmp/gopath"

# 4 KiB between samples: ~75,000 samples, so that even the object counts,
# whose small blocks are sampled rarely and weigh much, land within 10%
# (at 32 KiB their spread made one run in several miss).
LD_PRELOAD="$so" HAKMEM_PROF=1 HAKMEM_PROF_SAMPLE=4096 \
  HAKMEM_PROF_FILE="$tmp/exit.%p.heap" "$prog" "$tmp/sites.heap"

# The percentage column of a function in `pprof -top` (flat%).
flat_pct() { # index function
  "$go" tool pprof -top -sample_index="$1" "$prog" "$tmp/sites.heap" 2>/dev/null |
    awk -v f="$2" '$NF == f { sub("%", "", $2); print $2; exit }'
}

check_ratio() { # index expected-ratio
  local a b
  a="$(flat_pct "$1" site_a)"
  b="$(flat_pct "$1" site_b)"
  echo "$1: site_a ${a:-?}%, site_b ${b:-?}%, expected ratio $2"
  if [[ -z "$a" || -z "$b" ]]; then
    "$go" tool pprof -top -sample_index="$1" "$prog" "$tmp/sites.heap" || true
    echo "FAIL: site_a or site_b missing from the $1 ranking"
    exit 1
  fi
  awk -v a="$a" -v b="$b" -v r="$2" 'BEGIN {
    q = a / b; if (q < r * 0.9 || q > r * 1.1) { print "FAIL: ratio " q; exit 1 }
    print "ratio " q " ok" }'
}

check_ratio alloc_space 3
check_ratio inuse_space 1
check_ratio alloc_objects 3
check_ratio inuse_objects 1

# The two sites make (nearly) all of the allocation.
total="$("$go" tool pprof -top -sample_index=alloc_space "$prog" "$tmp/sites.heap" 2>/dev/null |
  awk '/^Showing nodes accounting for/ { print; exit }')"
echo "$total"

exit_file="$(ls "$tmp"/exit.*.heap)"

# HAKMEM_PROF_SIGNAL: the handler only sets a flag; the next slow path writes.
LD_PRELOAD="$so" HAKMEM_PROF=1 HAKMEM_PROF_SIGNAL=USR2 HAKMEM_PROF_FILE="$tmp/signal.heap" \
  "$prog" "$tmp/sites2.heap" "$tmp/signal.heap"
"$go" tool pprof -top -sample_index=alloc_space "$prog" "$tmp/signal.heap" 2>/dev/null |
  grep -q site_a || { echo "FAIL: the signal profile has no site_a"; exit 1; }
echo "signal profile ok"
"$go" tool pprof -top -sample_index=inuse_space "$prog" "$exit_file" 2>/dev/null | grep -q site_a ||
  { echo "FAIL: the exit profile has no site_a"; exit 1; }
echo PASS
