#!/usr/bin/env bash
# Checks that sources compiled once for every variant (variant_independent boxes
# and compile_once tests, //hakmem:variants.bzl) read no variant define: each
# is preprocessed with every variant's defines, in every build mode, and the
# outputs must be identical. Runs from the runfiles root under `bazel test`.
#
# Usage: variant_independence_test.sh --variant NAME:D1,D2 ... --mode NAME:D1,D2 ... FILE...
set -euo pipefail

usage() {
  echo "usage: $0 --variant NAME:DEFINE,... [--variant ...] --mode NAME:DEFINE,... [--mode ...] FILE..." >&2
  exit 2
}

variants=()
modes=()
files=()
while (($#)); do
  case $1 in
    --variant) (($# >= 2)) || usage; variants+=("$2"); shift 2 ;;
    --mode) (($# >= 2)) || usage; modes+=("$2"); shift 2 ;;
    -*) usage ;;
    *) files+=("$1"); shift ;;
  esac
done
((${#variants[@]} >= 2 && ${#modes[@]} >= 1 && ${#files[@]} >= 1)) || usage

out="${TEST_TMPDIR:-$(mktemp -d)}/preprocessed"
mkdir -p "${out}"

# -D flags of a "NAME:D1,D2" spec.
defines() {
  local spec=${1#*:} d
  local -a flags=()
  IFS=, read -r -a ds <<<"${spec}"
  for d in "${ds[@]}"; do [[ -n ${d} ]] && flags+=("-D${d}"); done
  printf '%s\n' "${flags[@]}"
}

failed=0
checked=0
for f in "${files[@]}"; do
  [[ -f ${f} ]] || { echo "FAIL: ${f} not found (cwd $(pwd))" >&2; exit 1; }
  case ${f} in
    *.cc) cc=(g++ -std=c++17) ;;
    *.c) cc=(gcc -std=gnu11) ;;
    *) continue ;;
  esac
  for m in "${modes[@]}"; do
    first=""
    for v in "${variants[@]}"; do
      mapfile -t flags < <(defines "${m}"; defines "${v}")
      pre="${out}/$(echo "${f}" | tr / _).${m%%:*}.${v%%:*}"
      "${cc[@]}" -E -P -iquote . -I hakmem/core/include "${flags[@]}" "${f}" >"${pre}" ||
        { echo "FAIL: ${f} does not preprocess (${m%%:*}, ${v%%:*})" >&2; exit 1; }
      if [[ -z ${first} ]]; then
        first=${pre}
      elif ! cmp -s "${first}" "${pre}"; then
        echo "FAIL: ${f} preprocesses differently in variant ${v%%:*} than in ${first##*.} (${m%%:*} build):" >&2
        diff "${first}" "${pre}" | head -n 10 >&2 || true
        echo "  it reads a variant define: drop variant_independent from its box or compile_once from its test (//hakmem:variants.bzl)" >&2
        failed=1
      fi
    done
  done
  checked=$((checked + 1))
done
((checked > 0)) || { echo "FAIL: no C or C++ source among the files" >&2; exit 1; }
((failed == 0)) || exit 1
echo "PASS: ${checked} sources preprocess identically in ${#variants[@]} variants, ${#modes[@]} build modes"
