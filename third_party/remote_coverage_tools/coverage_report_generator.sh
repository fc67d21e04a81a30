#!/usr/bin/env bash
# hakmem's stand-in for Bazel's coverage report generator (a Java tool we
# cannot fetch). Bazel 4.2.3 runs it once after `bazel coverage
# --combined_report=lcov`, with:
#   --reports_file=FILE   a list of the tests' coverage.dat files, one a line
#   --output_file=FILE    the combined lcov tracefile to write
#                         (bazel-out/_coverage/_coverage_report.dat)
# Other arguments are ignored. The tracefiles are merged with Debian's lcov
# (`lcov -a`), which adds up the counts of every test; files without line
# counts (a test that failed, one that ran no instrumented code, Bazel's
# baseline_coverage.dat) are skipped.
set -euo pipefail

reports_file=""
output_file=""
for arg in "$@"; do
  case "$arg" in
    --reports_file=*) reports_file="${arg#*=}" ;;
    --output_file=*) output_file="${arg#*=}" ;;
    *) echo "coverage_report_generator: ignoring $arg" >&2 ;;
  esac
done
if [[ -z "$reports_file" || -z "$output_file" ]]; then
  echo "usage: coverage_report_generator.sh --reports_file=FILE --output_file=FILE" >&2
  exit 2
fi
command -v lcov >/dev/null 2>&1 \
  || { echo "coverage_report_generator: lcov not found (tools/setup.sh installs it)" >&2; exit 1; }

args=()
while IFS= read -r dat || [[ -n "$dat" ]]; do
  [[ -n "$dat" ]] || continue
  # baseline_coverage.dat files (Bazel lists them too) name files, no lines.
  if [[ -s "$dat" ]] && grep -q '^DA:' "$dat"; then
    args+=(-a "$dat")
  fi
done <"$reports_file"

mkdir -p "$(dirname "$output_file")"
if ((${#args[@]} == 0)); then
  echo "coverage_report_generator: no coverage data in the tests' reports" >&2
  : >"$output_file"
  exit 0
fi
echo "coverage_report_generator: merging $((${#args[@]} / 2)) tracefiles with lcov" >&2
# The variants compile some functions at different lines (#if HAKMEM_...),
# which lcov warns about once per test ("function data mismatch"); drop those.
errors="$(mktemp)"
status=0
lcov --quiet "${args[@]}" -o "$output_file" 2>"$errors" || status=$?
grep -v 'function data mismatch' "$errors" >&2 || true
rm -f "$errors"
exit "$status"
