#!/usr/bin/env bash
# Builds the libFuzzer target alloc_fuzzer with clang, outside Bazel's gcc
# toolchain: hakmem's core sources and the fuzzer, all instrumented for
# coverage, with AddressSanitizer and UndefinedBehaviorSanitizer.
#
# Usage: build_fuzzer.sh ROOT VARIANT OUT
#   ROOT     directory holding hakmem/core/ and hakmem/fuzz/ (the repository
#            root, or a Bazel runfiles tree)
#   VARIANT  fastcache | nofastcache | hardened (as in //hakmem:variants.bzl)
#   OUT      the executable to write; objects go beside it in OUT.objs/
#
# Debug build of hakmem (HAKMEM_DEBUG=1: its own misuse checks on). Needs
# clang with libFuzzer (Debian: clang and libclang-rt-14-dev).
# CC=another-clang overrides the compiler.
set -euo pipefail

die() { echo "build_fuzzer.sh: $*" >&2; exit 2; }

[[ $# -eq 3 ]] || die "usage: build_fuzzer.sh ROOT VARIANT OUT"
root=$1 variant=$2 out=$3
cc=${CC:-clang}

case "${variant}" in
  fastcache) defines=(-DHAKMEM_FASTCACHE=1) ;;
  nofastcache) defines=(-DHAKMEM_FASTCACHE=0) ;;
  hardened) defines=(-DHAKMEM_FASTCACHE=1 -DHAKMEM_HARDENED=1) ;;
  *) die "unknown variant '${variant}' (fastcache, nofastcache, hardened)" ;;
esac

command -v "${cc}" >/dev/null 2>&1 || die "${cc} not found (Debian package clang)"

core="${root}/hakmem/core"
fuzzer="${root}/hakmem/fuzz/alloc_fuzzer.c"
[[ -f ${fuzzer} ]] || die "${fuzzer} not found"
[[ -f ${core}/include/hakmem.h ]] || die "${core}/include/hakmem.h not found"

# The allocator's sources: every .c of the core package except the malloc
# override and the unit tests' helpers (the same set as //hakmem/core:core).
srcs=()
for f in "${core}"/*.c; do
  case "$(basename "${f}")" in
    override.c | *_test*.c) ;;
    *) srcs+=("${f}") ;;
  esac
done
((${#srcs[@]} > 0)) || die "no sources in ${core}"

# shellcheck disable=SC2054  # the commas are inside -fsanitize=..., not separators
flags=(
  -g -O1 -fno-omit-frame-pointer
  -fsanitize=fuzzer,address,undefined
  # Every UBSan finding aborts the run.
  -fno-sanitize-recover=undefined
  -std=gnu11 -fvisibility=hidden
  -DHAKMEM_BUILD_RELEASE=0 -DHAKMEM_DEBUG=1 "${defines[@]}"
  -I"${core}/include" -I"${core}"
)

objs="${out}.objs"
rm -rf "${objs}"
mkdir -p "${objs}"
objects=()
for f in "${srcs[@]}"; do
  o="${objs}/$(basename "${f}" .c).o"
  "${cc}" "${flags[@]}" -c "${f}" -o "${o}" || die "compiling ${f} failed"
  objects+=("${o}")
done
"${cc}" "${flags[@]}" -Wall -Wextra -Werror -c "${fuzzer}" -o "${objs}/alloc_fuzzer.o" ||
  die "compiling ${fuzzer} failed"
"${cc}" "${flags[@]}" "${objs}/alloc_fuzzer.o" "${objects[@]}" -lpthread -o "${out}" ||
  die "linking ${out} failed (libFuzzer missing? Debian package libclang-rt-14-dev)"
echo "built ${out} (${variant}, ${#srcs[@]} hakmem sources)"
