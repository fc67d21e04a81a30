#!/usr/bin/env bash
# Launcher of tools/misuse_matrix.py for `bazel run //tools:misuse_matrix`
# (see tools/BUILD): runs it with the system python3, from the runfiles, where
# the misuse_matrix program and the libhakmem*.so of this build are.
set -euo pipefail
py=/usr/bin/python3
[[ -x "$py" ]] || py=python3
for candidate in \
    "${RUNFILES_DIR:-/nonexistent}/hakmem/tools/misuse_matrix.py" \
    "$0.runfiles/hakmem/tools/misuse_matrix.py" \
    "$(dirname "$0")/misuse_matrix.py"; do
  if [[ -f "$candidate" ]]; then
    exec "$py" "$candidate" "$@"
  fi
done
echo "misuse_matrix: cannot find misuse_matrix.py next to $0" >&2
exit 1
