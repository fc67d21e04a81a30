#!/usr/bin/env bash
# Fuzzes hakmem's hak_* API with libFuzzer for a while.
#
# Usage: hakmem/fuzz/run_fuzz.sh [SECONDS]      (default 60)
#
# Builds //hakmem/fuzz:alloc_fuzzer<suffix> for every variant of
# hakmem/variants.bzl with `bazel build --config=fuzz` (clang, libFuzzer,
# ASan, UBSan) and fuzzes each in turn, starting from a copy of the committed
# seed corpus (hakmem/fuzz/corpus/), which the variants share as it grows.
# Time split: half to the default variant (the first), the other half shared
# by the rest.
#
# Exit status 0 when no input crashed; otherwise non-zero, with the path of
# the reproducer and the command that replays it. The temporary directory is
# kept after a failure (and removed after success unless
# HAKMEM_FUZZ_KEEP=1).
#
# Environment:
#   HAKMEM_FUZZ_VARIANTS   variants to run (short names), e.g. "fastcache"
#                          (default: all, from hakmem/variants.bzl)
#   HAKMEM_FUZZ_WORKDIR    directory to work in (default: mktemp -d)
#   HAKMEM_FUZZ_KEEP=1     keep the work directory (new corpus inputs are in
#                          corpus/; add them to hakmem/fuzz/corpus/ by hand
#                          only if small and interesting)
#   BAZEL                  the bazel binary (default: bazel)
#   HAKMEM_TCACHE_MAX ...  passed to hakmem as usual (the fuzzer sets a small
#                          HAKMEM_TCACHE_MAX itself when it is unset)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "${here}/../.." && pwd)
seconds=${1:-60}
[[ ${seconds} =~ ^[0-9]+$ && ${seconds} -gt 0 ]] || {
  echo "usage: run_fuzz.sh [SECONDS]  (a positive whole number)" >&2
  exit 2
}
bazel=${BAZEL:-bazel}

# short name -> target suffix, for every variant in hakmem/variants.bzl.
declare -A suffix_of=()
all=()
while read -r name suffix; do
  suffix_of[${name}]=${suffix}
  all+=("${name}")
done < <(python3 "${root}/tools/variants.py" --bzl "${root}/hakmem/variants.bzl")
((${#all[@]} > 0)) || {
  echo "run_fuzz: no variants read from hakmem/variants.bzl" >&2
  exit 2
}
read -r -a variants <<<"${HAKMEM_FUZZ_VARIANTS:-${all[*]}}"
for v in "${variants[@]}"; do
  [[ -v "suffix_of[${v}]" ]] || {
    echo "run_fuzz: unknown variant '${v}' (known: ${all[*]})" >&2
    exit 2
  }
done

work=${HAKMEM_FUZZ_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/hakmem_fuzz.XXXXXX")}
mkdir -p "${work}/corpus" "${work}/artifacts"
cp "${here}"/corpus/* "${work}/corpus/"
echo "run_fuzz: work directory ${work}, ${seconds} s over: ${variants[*]}"

# Seconds for each variant: the first gets half (all of it if alone), the
# rest share the other half; at least 5 s each.
share() {
  local i=$1 n=${#variants[@]} s
  if ((n == 1)); then
    s=${seconds}
  elif ((i == 0)); then
    s=$((seconds / 2))
  else
    s=$(((seconds - seconds / 2) / (n - 1)))
  fi
  ((s < 5)) && s=5
  echo "${s}"
}

export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=${here}/ubsan.supp"
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0}"

targets=()
for v in "${variants[@]}"; do
  targets+=("//hakmem/fuzz:alloc_fuzzer${suffix_of[${v}]}")
done
(cd "${root}" && "${bazel}" build --config=fuzz "${targets[@]}")
bin=$(cd "${root}" && "${bazel}" info --config=fuzz bazel-bin 2>/dev/null)
for v in "${variants[@]}"; do
  # A copy, so that a later build cannot change the binary under a replay command.
  cp "${bin}/hakmem/fuzz/alloc_fuzzer${suffix_of[${v}]}" "${work}/alloc_fuzzer_${v}"
done

status=0
for i in "${!variants[@]}"; do
  v=${variants[$i]}
  t=$(share "${i}")
  echo
  echo "=== fuzzing variant ${v} for ${t} s"
  mkdir -p "${work}/artifacts/${v}"
  rc=0
  "${work}/alloc_fuzzer_${v}" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -max_total_time="${t}" -print_final_stats=1 \
    -artifact_prefix="${work}/artifacts/${v}/" "${work}/corpus" \
    >"${work}/fuzz_${v}.log" 2>&1 || rc=$?
  grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::number_of_executed_units|stat::peak_rss_mb)' \
    "${work}/fuzz_${v}.log" | sed 's/^/  /' || true
  if ((rc != 0)); then
    status=1
    echo "FAIL: the ${v} fuzzer stopped with exit status ${rc}; its log: ${work}/fuzz_${v}.log" >&2
    grep -E 'alloc_fuzzer: FAIL|ERROR: |SUMMARY: |runtime error|hakmem:' "${work}/fuzz_${v}.log" |
      head -n 10 | sed 's/^/  /' >&2 || true
    for a in "${work}/artifacts/${v}"/*; do
      [[ -e ${a} ]] || continue
      echo "reproducer: ${a}" >&2
      echo "  replay: UBSAN_OPTIONS='${UBSAN_OPTIONS}' ${work}/alloc_fuzzer_${v} ${a}" >&2
    done
  fi
done

echo
echo "corpus: $(ls "${work}/corpus" | wc -l) inputs ($(ls "${here}/corpus" | wc -l) seeds)"
if ((status != 0)); then
  echo "run_fuzz: FAILED (work directory kept: ${work})" >&2
  exit 1
fi
if [[ ${HAKMEM_FUZZ_KEEP:-0} == 1 || -n ${HAKMEM_FUZZ_WORKDIR:-} ]]; then
  echo "run_fuzz: passed (work directory kept: ${work})"
else
  rm -rf "${work}"
  echo "run_fuzz: passed"
fi
