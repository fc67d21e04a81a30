#!/usr/bin/env bash
# //dashboards:api_test: dashboards/api_test.py (unittest) on Debian's python3,
# which has python3-flask, python3-waitress and python3-jsonschema; Bazel
# 4.2.3's py_test stub wants a `python` on PATH, which Debian does not have.
set -euo pipefail
py=/usr/bin/python3
[[ -x "$py" ]] || py=python3
dir="${TEST_SRCDIR:-}/${TEST_WORKSPACE:-hakmem}/dashboards"
[[ -f "$dir/api_test.py" ]] || dir="$(dirname "$0")"
exec "$py" "$dir/api_test.py" -v
