#!/usr/bin/env bash
# Launcher of the Python scripts of //tools/layering: runs SCRIPT (a path
# relative to the runfiles' workspace directory, as $(rootpath) gives it) with
# the system python3. Bazel 4.2.3's py_binary/py_test stub starts with
# `#!/usr/bin/env python`, which Debian does not have (see tools/BUILD).
#   run_python.sh SCRIPT [ARGS...]
set -euo pipefail
py=/usr/bin/python3
[[ -x "$py" ]] || py=python3
script="${1:?usage: run_python.sh SCRIPT [ARGS...]}"
shift
# bazel test and bazel run start in the runfiles' workspace directory.
for candidate in \
    "$script" \
    "${RUNFILES_DIR:-/nonexistent}/hakmem/$script" \
    "$0.runfiles/hakmem/$script"; do
  if [[ -f "$candidate" ]]; then
    exec "$py" "$candidate" "$@"
  fi
done
echo "run_python.sh: cannot find $script (from $PWD)" >&2
exit 1
