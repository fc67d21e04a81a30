#!/bin/sh
# fastpath_count.sh - instructions per malloc/free call on hakmem's hit path.
#
#   bazel run --config=release //hakmem/bench:fastpath_count [-- --calls K] [-- --keep DIR]
#   fastpath_count.sh PROGRAM LIBHAKMEM_SO [--calls K] [--keep DIR]
#
# Runs PROGRAM (fastpath_count_prog) under `valgrind --tool=callgrind` with
# LIBHAKMEM_SO preloaded, collecting only inside fastpath_marked_loop(), which
# does exactly K malloc(32)+free pairs after a warm-up.  From callgrind's
# per-function costs it prints, per call, the instructions executed by
# hakmem's exported malloc/free together with everything they run (the
# hak_malloc/hak_free they jump to, and anything those call):
#
#   malloc: X instructions per call
#   free: Y instructions per call
#
# Bazel's `args` supply PROGRAM and LIBHAKMEM_SO; options follow them.
# Exit status: 0 on success, 1 if a step fails, 2 on a usage error.
set -eu

me=fastpath_count

usage() {
    cat <<EOF
usage: $me PROGRAM LIBHAKMEM_SO [--calls K] [--keep DIR]
  (under Bazel: bazel run --config=release //hakmem/bench:fastpath_count -- [options])

Counts instructions per malloc(32)/free call on hakmem's hit path with
valgrind --tool=callgrind.
  --calls K    malloc+free pairs in the measured loop (default 1000000)
  --keep DIR   keep callgrind's output file in DIR (default: a temporary
               directory that is removed)
  -h, --help   print this help
EOF
}

fail() {
    echo "$me: error: $*" >&2
    exit 1
}

case "${1:-}" in
-h | --help)
    usage
    exit 0
    ;;
esac
if [ $# -lt 2 ]; then
    usage >&2
    exit 2
fi
prog=$1
so=$2
shift 2

calls=1000000
keep=
while [ $# -gt 0 ]; do
    case $1 in
    --calls)
        [ $# -ge 2 ] || { usage >&2; exit 2; }
        calls=$2
        shift 2
        ;;
    --calls=*)
        calls=${1#--calls=}
        shift
        ;;
    --keep)
        [ $# -ge 2 ] || { usage >&2; exit 2; }
        keep=$2
        shift 2
        ;;
    --keep=*)
        keep=${1#--keep=}
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "$me: unknown argument '$1'" >&2
        usage >&2
        exit 2
        ;;
    esac
done
case $calls in
'' | *[!0-9]* | 0*)
    echo "$me: --calls needs a positive integer, got '$calls'" >&2
    exit 2
    ;;
esac

# Bazel runs us in the runfiles tree; make the paths absolute, since
# LD_PRELOAD must not depend on the working directory.
case $prog in /*) ;; *) prog=$PWD/$prog ;; esac
case $so in /*) ;; *) so=$PWD/$so ;; esac
[ -x "$prog" ] || fail "program '$prog' not found or not executable"
[ -r "$so" ] || fail "preload library '$so' not found"
command -v valgrind >/dev/null 2>&1 || fail "valgrind is not installed"
command -v callgrind_annotate >/dev/null 2>&1 || fail "callgrind_annotate is not installed"

if [ -n "$keep" ]; then
    case $keep in /*) ;; *) keep=${BUILD_WORKING_DIRECTORY:-$PWD}/$keep ;; esac
    mkdir -p "$keep"
    dir=$keep
else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/fastpath_count.XXXXXX")
    trap 'rm -rf "$dir"' EXIT
    trap 'exit 1' HUP INT TERM
fi
out=$dir/callgrind.out

if ! LD_PRELOAD=$so valgrind --tool=callgrind --collect-atstart=no \
    --toggle-collect=fastpath_marked_loop --callgrind-out-file="$out" \
    "$prog" "$calls" >"$dir/run.log" 2>&1; then
    cat "$dir/run.log" >&2
    fail "valgrind run failed"
fi
[ -s "$out" ] || fail "callgrind wrote no profile ($out)"

# Self cost of every function: lines "  1,234 (12.3%)  file:function [object]".
callgrind_annotate --inclusive=no --threshold=100 "$out" >"$dir/self.txt" ||
    fail "callgrind_annotate failed"
# Callers: "  2,200,000 (30.56%)  < file:caller (100,000x) [object]" precedes
# the "  N (..)  *  file:function [object]" line of the function it called.
callgrind_annotate --inclusive=yes --tree=caller --threshold=100 "$out" >"$dir/tree.txt" ||
    fail "callgrind_annotate --tree=caller failed"

awk -v calls="$calls" -v so="$so" -v me="$me" '
function num(s) { gsub(/,/, "", s); return s + 0 }
# "file:function [object]" -> function name (after the last colon of the
# part before " [").
function fname(s,   t) {
    t = s
    sub(/ \[.*$/, "", t)
    sub(/^.*:/, "", t)
    return t
}
function object(s,   t) {
    t = s
    if (t !~ /\[/) return ""
    sub(/^.*\[/, "", t)
    sub(/\].*$/, "", t)
    return t
}
function pretty(v) {
    if (v == int(v)) return sprintf("%d", v)
    return sprintf("%.2f", v)
}
FNR == 1 { file++ }
# Self costs.
file == 1 && /^ *[0-9][0-9,]* \(/ && $0 !~ /PROGRAM TOTALS/ {
    line = $0
    cost = num($1)
    sub(/^ *[0-9][0-9,]* \([^)]*\) +/, "", line)
    f = fname(line); o = object(line)
    if (o ~ /libhakmem[^\/]*\.so$/) {
        self[f] += cost
        hak_total += cost
    }
    next
}
# Caller lines of the tree, remembered until the callee line comes.
file == 2 && /^ *[0-9][0-9,]* \([^)]*\) +< / {
    line = $0
    cost = num($1)
    sub(/^ *[0-9][0-9,]* \([^)]*\) +< /, "", line)
    if (fname(line) ~ /^fastpath_marked_loop( \(|$)/ || line ~ /:fastpath_marked_loop \(/) {
        n = line
        sub(/^.*\(/, "", n); sub(/x\).*$/, "", n)
        pend_cost[++np] = cost
        pend_calls[np] = num(n)
    }
    next
}
file == 2 && /^ *[0-9][0-9,]* \([^)]*\) +\* / {
    line = $0
    sub(/^ *[0-9][0-9,]* \([^)]*\) +\*  */, "", line)
    f = fname(line); o = object(line)
    if (o ~ /libhakmem[^\/]*\.so$/ && (f == "malloc" || f == "free")) {
        for (i = 1; i <= np; i++) {
            incl[f] += pend_cost[i]
            ncalls[f] += pend_calls[i]
        }
    }
    np = 0
    next
}
file == 2 && /^$/ { np = 0 }
END {
    bad = 0
    for (k = 1; k <= 2; k++) {
        f = (k == 1) ? "malloc" : "free"
        if (!(f in incl)) {
            printf "%s: error: no call of hakmem'\''s %s from fastpath_marked_loop in the profile; was %s preloaded?\n", me, f, so > "/dev/stderr"
            bad = 1
        } else if (ncalls[f] != calls) {
            printf "%s: error: fastpath_marked_loop called %s %d times, expected %d\n", me, f, ncalls[f], calls > "/dev/stderr"
            bad = 1
        }
    }
    if (bad) exit 1
    inner_m = ("hak_malloc" in self) ? "hak_malloc" : "hak_api_malloc"
    inner_f = ("hak_free" in self) ? "hak_free" : "hak_api_free"
    known = self["malloc"] + self[inner_m] + self["free"] + self[inner_f]
    other = hak_total - known
    printf "calls: %d malloc(32) + %d free on the hit path, after warm-up\n", calls, calls
    printf "hakmem: %s\n", so
    printf "breakdown per call: malloc %s + %s %s; free %s + %s %s", \
        pretty(self["malloc"] / calls), inner_m, pretty(self[inner_m] / calls), \
        pretty(self["free"] / calls), inner_f, pretty(self[inner_f] / calls)
    if (other > 0)
        printf "; other hakmem functions %s (slow path or helpers)", pretty(other / calls)
    printf "\n"
    printf "malloc: %s instructions per call\n", pretty(incl["malloc"] / calls)
    printf "free: %s instructions per call\n", pretty(incl["free"] / calls)
}
' "$dir/self.txt" "$dir/tree.txt"
