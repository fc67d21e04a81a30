#!/usr/bin/env bash
# //tools:misuse_matrix_test: the unit tests of tools/misuse_matrix.py, run
# with the system python3 (plain unittest).
set -euo pipefail
py=/usr/bin/python3
[[ -x "$py" ]] || py=python3
root="${TEST_SRCDIR:-}/${TEST_WORKSPACE:-hakmem}"
[[ -f "$root/tools/misuse_matrix_test.py" ]] || root="$(dirname "$0")/.."
export MISUSE_MATRIX_PROGRAM="$root/hakmem/tests/reliability/misuse_matrix"
exec "$py" "$root/tools/misuse_matrix_test.py" -v
