#!/usr/bin/env bash
# Line coverage of hakmem/core by the tests of //hakmem/..., with gcc's gcov
# and Debian's lcov (tools/setup.sh installs both).
#
# Runs `bazel coverage` (instrumenting //hakmem/...; the tests link the
# //hakmem/core:core* and :override* static libraries, so the core sources are
# measured as compiled into the tests, every variant together), then prints
# the line coverage of hakmem/core's own C sources (tests and test helpers
# left out) as a whole and per file. Bazel's hooks it relies on are in
# third_party/remote_coverage_tools/BUILD.
set -euo pipefail

usage() {
  cat <<USAGE
Usage: tools/coverage.sh [--html DIR] [--tracefile FILE] [--help] [-- BAZEL_ARGS...]

Runs 'bazel coverage //hakmem/...' and prints the line coverage of
hakmem/core/*.c (not the tests' files), as a whole and per file.

Options:
  --html DIR        also write an lcov HTML report of hakmem/core (sources and
                    headers) to DIR (genhtml)
  --tracefile FILE  also copy the combined lcov tracefile of //hakmem/... to FILE
  --help            show this help
  -- BAZEL_ARGS...  passed to bazel coverage before the targets: options, and
                    targets to leave out as -//pattern (e.g.
                    -- --test_timeout=300,1800,3600,3600
                    -- -//hakmem/tests/programs:python_test_fastcache)
USAGE
}

die_usage() {
  printf 'tools/coverage.sh: %s\n' "$*" >&2
  usage | head -n 1 >&2
  exit 2
}

html_dir=""
tracefile=""
while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --html)
      (($# >= 2)) && [[ -n "$2" ]] || die_usage "--html needs a directory"
      html_dir="$2"; shift 2 ;;
    --html=*)
      html_dir="${1#*=}"; [[ -n "$html_dir" ]] || die_usage "--html needs a directory"; shift ;;
    --tracefile)
      (($# >= 2)) && [[ -n "$2" ]] || die_usage "--tracefile needs a file name"
      tracefile="$2"; shift 2 ;;
    --tracefile=*)
      tracefile="${1#*=}"; [[ -n "$tracefile" ]] || die_usage "--tracefile needs a file name"; shift ;;
    --) shift; break ;;
    *) die_usage "unknown argument: $1" ;;
  esac
done
bazel_options=()
excluded=()
for arg in "$@"; do
  case "$arg" in
    -//*) excluded+=("$arg") ;;
    *) bazel_options+=("$arg") ;;
  esac
done

# Make relative output paths relative to where we were called from.
abspath() { [[ "$1" == /* ]] && printf '%s\n' "$1" || printf '%s/%s\n' "$PWD" "$1"; }
[[ -z "$html_dir" ]] || html_dir="$(abspath "$html_dir")"
[[ -z "$tracefile" ]] || tracefile="$(abspath "$tracefile")"

cd "$(dirname "$0")/.."
for tool in bazel gcov lcov genhtml python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "tools/coverage.sh: $tool not found (run tools/setup.sh)" >&2; exit 1; }
done

log() { printf '[coverage] %s\n' "$*"; }

# --combined_report=lcov: our coverage_report_generator merges every test's
# coverage.dat into bazel-out/_coverage/_coverage_report.dat.
# --instrumentation_filter: instrument everything under //hakmem (the core
# libraries included) and nothing else.
# --keep_going: a test that times out leaves no coverage.dat, which Bazel
# 4.2.3 reports as a build error and, without it, stops every other test.
log "bazel coverage //hakmem/... (instrumented: //hakmem/...)"
bazel coverage \
  --combined_report=lcov \
  --instrumentation_filter='^//hakmem[/:]' \
  --build_tests_only \
  --keep_going \
  "${bazel_options[@]}" \
  -- //hakmem/... "${excluded[@]}"

report="$(bazel info output_path 2>/dev/null)/_coverage/_coverage_report.dat"
[[ -s "$report" ]] || { echo "tools/coverage.sh: no combined report at $report" >&2; exit 1; }

work="$(mktemp -d /tmp/hakmem-coverage.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# hakmem/core: its sources and headers, without the tests and their helpers.
lcov --quiet --extract "$report" 'hakmem/core/*' -o "$work/core_all.dat"
lcov --quiet --remove "$work/core_all.dat" '*_test*' '*/box_test_*' -o "$work/core.dat"

# The table: hakmem/core/*.c only. A line counts as covered if any test ran it
# in any variant. Sources on disk that no test binary contains are listed too.
printf '\n'
python3 - "$work/core.dat" hakmem/core <<'PY'
import os
import sys

tracefile, core_dir = sys.argv[1], sys.argv[2]
lines = {}  # source -> {line: covered}
source = None
with open(tracefile, encoding="utf-8", errors="replace") as f:
    for raw in f:
        raw = raw.strip()
        if raw.startswith("SF:"):
            source = raw[3:]
            if source.startswith("/proc/self/cwd/"):
                source = source[len("/proc/self/cwd/"):]
            lines.setdefault(source, {})
        elif raw.startswith("DA:") and source is not None:
            number, count = raw[3:].split(",")[:2]
            seen = lines[source]
            seen[int(number)] = seen.get(int(number), False) or int(count) > 0
        elif raw == "end_of_record":
            source = None

on_disk = sorted(
    os.path.join(core_dir, n)
    for n in os.listdir(core_dir)
    if n.endswith(".c") and "_test" not in n and not n.startswith("box_test_")
)
rows, hit_total, found_total = [], 0, 0
for path in sorted(set(on_disk) | {s for s in lines if s.endswith(".c")}):
    seen = lines.get(path)
    if seen is None:
        rows.append((path, None, None))
        continue
    hit, found = sum(seen.values()), len(seen)
    hit_total += hit
    found_total += found
    rows.append((path, hit, found))

width = max(len(r[0]) for r in rows + [("hakmem/core (all .c)", 0, 0)])
print("Line coverage of hakmem/core by //hakmem/... (gcov, every variant whose tests ran)")
print("%-*s  %8s  %13s" % (width, "file", "coverage", "lines hit"))
print("-" * (width + 25))
for path, hit, found in rows:
    if found is None:
        print("%-*s  %8s  %13s" % (width, path, "n/a", "no test links it"))
    elif found == 0:
        print("%-*s  %8s  %13s" % (width, path, "n/a", "0 / 0"))
    else:
        print("%-*s  %7.1f%%  %13s" % (width, path, 100.0 * hit / found, "%d / %d" % (hit, found)))
print("-" * (width + 25))
if found_total:
    print("%-*s  %7.1f%%  %13s" % (width, "hakmem/core (all .c)", 100.0 * hit_total / found_total,
                                   "%d / %d" % (hit_total, found_total)))
PY

if [[ -n "$tracefile" ]]; then
  mkdir -p "$(dirname "$tracefile")"
  cp "$report" "$tracefile"
  log "combined tracefile of //hakmem/...: $tracefile"
fi
if [[ -n "$html_dir" ]]; then
  mkdir -p "$html_dir"
  genhtml --quiet --legend --title "hakmem/core line coverage ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))" \
    --output-directory "$html_dir" "$work/core.dat"
  log "HTML report of hakmem/core: $html_dir/index.html"
fi
