#!/bin/sh
# hakmem: runs a program with the hakmem allocator preloaded (installed as
# bin/hakmem by `bazel run //:install`, which fills in the two values below).
HAKMEM_LIBDIR='@LIBDIR@'
HAKMEM_RELEASE='@VERSION@'

usage_line='Usage: hakmem [--hardened] [--stats[=json]] [--profile FILE] [--] PROGRAM [ARG...]'

usage() {
  cat <<USAGE
$usage_line

Runs PROGRAM with hakmem's malloc preloaded (LD_PRELOAD, put in front of any
value it already has) and exec's it, so its exit status and signals are the
command's own.

Options:
  --hardened       preload the hardened library (libhakmem_hardened.so)
  --stats          print hakmem's statistics report at exit (HAKMEM_STATS=1)
  --stats=json     print it as one JSON object (HAKMEM_STATS=json)
  --profile FILE   write a sampled heap profile (pprof) to FILE at exit
                   (HAKMEM_PROF=1, HAKMEM_PROF_FILE=FILE; %p: the process id)
  --               end of options: the next word is PROGRAM
  --help           show this help
  --version        print the version

Other HAKMEM_* variables in the environment are passed on unchanged
(man hakmem lists them). Libraries: $HAKMEM_LIBDIR
USAGE
}

# Bad usage: the reason and the usage line on stderr, exit 2.
bad() {
  printf 'hakmem: %s\n%s\n' "$1" "$usage_line" >&2
  exit 2
}

lib=libhakmem.so
stats=
want_profile=0
profile=
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --version) printf 'hakmem %s\n' "$HAKMEM_RELEASE"; exit 0 ;;
    --hardened) lib=libhakmem_hardened.so ;;
    --stats | --stats=text) stats=1 ;;
    --stats=json) stats=json ;;
    --stats=*) bad "unknown statistics format '${1#--stats=}' (text or json)" ;;
    --profile)
      [ $# -ge 2 ] || bad "--profile needs a FILE"
      want_profile=1
      profile=$2
      shift
      ;;
    --profile=*) want_profile=1; profile=${1#--profile=} ;;
    --) shift; break ;;
    -*) bad "unknown option '$1'" ;;
    *) break ;;
  esac
  shift
done
[ $# -gt 0 ] || bad "no PROGRAM given"

if [ "$want_profile" = 1 ]; then
  # hakmem refuses an empty name or one over 255 bytes and would profile nothing.
  [ -n "$profile" ] || bad "--profile needs a FILE"
  [ "$(printf %s "$profile" | wc -c)" -le 255 ] || bad "--profile FILE: at most 255 bytes"
fi

so=$HAKMEM_LIBDIR/$lib
if [ ! -f "$so" ]; then
  printf 'hakmem: %s not found (hakmem uninstalled or moved?)\n' "$so" >&2
  exit 125
fi
# Checked here: after exec a missing program could only be reported by the shell.
if ! command -v "$1" >/dev/null 2>&1; then
  printf 'hakmem: %s: command not found\n' "$1" >&2
  exit 127
fi

# Either of our libraries already there (a hakmem run from inside another)
# is dropped: two allocators in one process would split its blocks.
rest=
saved_ifs=$IFS
IFS=': '
set -f
for entry in ${LD_PRELOAD-}; do
  case $entry in
    "$HAKMEM_LIBDIR/libhakmem.so" | "$HAKMEM_LIBDIR/libhakmem_hardened.so") ;;
    *) rest=${rest:+$rest:}$entry ;;
  esac
done
set +f
IFS=$saved_ifs
LD_PRELOAD=$so${rest:+:$rest}
export LD_PRELOAD
if [ -n "$stats" ]; then
  HAKMEM_STATS=$stats
  export HAKMEM_STATS
fi
if [ "$want_profile" = 1 ]; then
  HAKMEM_PROF=1
  HAKMEM_PROF_FILE=$profile
  export HAKMEM_PROF HAKMEM_PROF_FILE
fi
exec "$@"
