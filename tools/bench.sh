#!/usr/bin/env bash
# Launcher of tools/bench.py for `bazel run //tools:bench` (see tools/BUILD):
# runs it with the system python3, so the py_* rules' interpreter lookup
# (which wants a `python` on PATH) is not needed.
set -euo pipefail
py=/usr/bin/python3
[[ -x "$py" ]] || py=python3
for candidate in \
    "${RUNFILES_DIR:-/nonexistent}/hakmem/tools/bench.py" \
    "$0.runfiles/hakmem/tools/bench.py" \
    "$(dirname "$0")/bench.py"; do
  if [[ -f "$candidate" ]]; then
    exec "$py" "$candidate" "$@"
  fi
done
echo "bench: cannot find bench.py next to $0" >&2
exit 1
