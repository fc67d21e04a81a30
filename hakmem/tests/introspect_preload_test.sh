#!/usr/bin/env bash
# glibc's introspection calls and the statistics signal through the preload
# library, in a real program (Python, calling them with ctypes): the names
# libhakmem.so exports are the ones the program reaches, hak_build_info_get
# names the library's variant (HAKMEM_VARIANT), and HAKMEM_STATS_SIGNAL works
# in a process hakmem was preloaded into.
#
# Usage: introspect_preload_test.sh path/to/libhakmem.so
set -euo pipefail

die() {
  echo "FAIL: $*" >&2
  exit 1
}

[[ $# -ge 1 && -f $1 ]] || die "usage: $0 path/to/libhakmem.so"
SO=$(realpath -- "$1")
WORK="${TEST_TMPDIR:-$(mktemp -d)}/introspect_preload"
rm -rf "${WORK}"
mkdir -p "${WORK}"
export LC_ALL=C PYTHONDONTWRITEBYTECODE=1
unset LD_PRELOAD HAKMEM_STATS HAKMEM_STATS_SIGNAL HAKMEM_STATS_FD PYTHONMALLOC
PY=/usr/bin/python3

# ---- mallinfo2, malloc_stats, malloc_info, mallopt ---------------------------
cat >"${WORK}/calls.py" <<'PYEOF'
import ctypes, os, sys

libc = ctypes.CDLL(None, use_errno=True)

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
        "fsmblks", "uordblks", "fordblks", "keepcost")]

libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
big = libc.malloc(5 << 20)
m = libc.mallinfo2()
# hakmem's figures: SuperSlabs of 2 MiB, large blocks in mappings of whole
# 2 MiB regions (no limit on address space here; pages under one).
assert m.arena > 0 and m.arena % (2 << 20) == 0, m.arena
assert m.hblks >= 1 and m.hblkhd >= (5 << 20) and m.hblkhd % 4096 == 0, (m.hblks, m.hblkhd)
assert m.arena == m.uordblks + m.fordblks, (m.arena, m.uordblks, m.fordblks)
assert m.usmblks == 0
libc.free(big)
M_MXFAST = 1
assert libc.mallopt(M_MXFAST, 161) == 0
assert libc.mallopt(M_MXFAST, 64) == 1
sys.stderr.flush()
libc.malloc_stats()
libc.fdopen.restype = ctypes.c_void_p
libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fflush.argtypes = [ctypes.c_void_p]
out = libc.fdopen(os.dup(1), b"w")
assert libc.malloc_info(0, out) == 0
assert libc.malloc_info(1, out) == -1 and ctypes.get_errno() == 22
libc.fflush(out)

# hak_build_info_get is exported too, and names the variant of the library.
class BuildInfo(ctypes.Structure):
    _fields_ = [("build", ctypes.c_char_p)] + [(n, ctypes.c_int) for n in (
        "release", "debug_checks", "fast_cache", "hardened")]

libc.hak_build_info_get.restype = None
b = BuildInfo()
libc.hak_build_info_get(ctypes.byref(b))
variant = os.environ["HAKMEM_VARIANT"]
assert b.build in (b"release", b"debug") and b.release == (b.build == b"release"), b.build
assert b.fast_cache == ("nofastcache" not in variant), (variant, b.fast_cache)
assert b.hardened == ("hardened" in variant), (variant, b.hardened)
print("calls ok", flush=True)
PYEOF

LD_PRELOAD="${SO}" "${PY}" "${WORK}/calls.py" >"${WORK}/calls.out" 2>"${WORK}/calls.err" ||
  { cat "${WORK}/calls.err" >&2; die "calls.py failed under preload"; }
grep -q '^calls ok$' "${WORK}/calls.out" || die "calls.py did not finish"
grep -q '^Arena 0:$' "${WORK}/calls.err" || die "malloc_stats: no 'Arena 0:'"
grep -Eq '^max mmap bytes   = +[0-9]+$' "${WORK}/calls.err" || die "malloc_stats: no max mmap bytes"
grep -q '^<malloc version="1">$' "${WORK}/calls.out" || die "malloc_info: no <malloc>"
grep -q '^</malloc>$' "${WORK}/calls.out" || die "malloc_info: no </malloc>"
grep -q '<total type="mmap" count=' "${WORK}/calls.out" || die "malloc_info: no mmap total"
echo "ok: mallinfo2, malloc_stats, malloc_info, mallopt, hak_build_info_get reach hakmem"

# ---- HAKMEM_STATS_SIGNAL --------------------------------------------------------
# USR1 with no handler of the program's: the report, and the program lives on
# (the default action, termination, is replaced).
HAKMEM_STATS_SIGNAL=USR1 HAKMEM_STATS_FD=2 LD_PRELOAD="${SO}" "${PY}" -c '
import os, signal
os.kill(os.getpid(), signal.SIGUSR1)
print("alive")' >"${WORK}/sig.out" 2>"${WORK}/sig.err" || die "the USR1 run failed"
grep -q '^alive$' "${WORK}/sig.out" || die "the program did not live on after USR1"
grep -q '^hakmem stats (pid ' "${WORK}/sig.err" || die "no report on USR1"
grep -Eq '^total allocs [1-9]' "${WORK}/sig.err" || die "the USR1 report shows no allocations"

# JSON with HAKMEM_STATS=json (which also writes the exit report).
HAKMEM_STATS=json HAKMEM_STATS_SIGNAL=SIGUSR2 LD_PRELOAD="${SO}" "${PY}" -c '
import os, signal
os.kill(os.getpid(), signal.SIGUSR2)' 2>"${WORK}/json.err" || die "the USR2 run failed"
[[ $(grep -c '^{"pid":' "${WORK}/json.err") == 2 ]] || die "expected the signal and the exit JSON reports"

# A handler the program installs later replaces hakmem's.
HAKMEM_STATS_SIGNAL=USR1 HAKMEM_STATS_FD=2 LD_PRELOAD="${SO}" "${PY}" -c '
import os, signal
signal.signal(signal.SIGUSR1, lambda s, f: print("program handler"))
os.kill(os.getpid(), signal.SIGUSR1)' >"${WORK}/later.out" 2>"${WORK}/later.err" ||
  die "the later-handler run failed"
grep -q '^program handler$' "${WORK}/later.out" || die "the program's handler did not run"
if grep -q '^hakmem stats' "${WORK}/later.err"; then
  die "hakmem reported although the program replaced its handler"
fi
echo "ok: HAKMEM_STATS_SIGNAL"
