#!/usr/bin/env bash
# bazel run //dashboards:serve -- [--host 127.0.0.1] [--port 8321] [--db PATH] ...
# Starts dashboards/server.py from the runfiles (static files and Chart.js
# come along as data). Under `bazel run` the default database is
# $BUILD_WORKSPACE_DIRECTORY/dashboards/data/hakmem.db.
set -euo pipefail
# Debian's python3 carries python3-flask, -waitress and -jsonschema; a python3
# earlier on PATH (pyenv, a venv) may not.
py=/usr/bin/python3
[[ -x "$py" ]] || py=python3
self="${BASH_SOURCE[0]}"
for dir in \
    "${RUNFILES_DIR:+$RUNFILES_DIR/hakmem/dashboards}" \
    "$self.runfiles/hakmem/dashboards" \
    "$(dirname "$self")"; do
  if [[ -n "$dir" && -f "$dir/server.py" ]]; then
    exec "$py" "$dir/server.py" "$@"
  fi
done
echo "serve: cannot find dashboards/server.py in the runfiles of $self" >&2
exit 1
