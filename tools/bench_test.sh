#!/usr/bin/env bash
# //tools:bench_test: the unit tests of tools/bench.py, run with the system
# python3 (plain unittest).
set -euo pipefail
py=/usr/bin/python3
[[ -x "$py" ]] || py=python3
dir="${TEST_SRCDIR:-}/${TEST_WORKSPACE:-hakmem}/tools"
[[ -f "$dir/bench_test.py" ]] || dir="$(dirname "$0")"
exec "$py" "$dir/bench_test.py" -v
