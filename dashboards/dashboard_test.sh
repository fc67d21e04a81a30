#!/usr/bin/env bash
# End-to-end test of the hakmem dashboard (//dashboards:dashboard_test).
#
#   bazel test //dashboards:dashboard_test
#   bazel test //dashboards:dashboard_test --test_arg=/abs/path/run.json
#   dashboards/dashboard_test.sh [RUN_JSON [OUT_DIR]]      # without Bazel
#
# RUN_JSON: a run as tools/bench pushes it, or a JSON array of runs (pushed in
# order); default dashboards/testdata/run_fixture.json (2 commits).
# OUT_DIR: where the screenshots go; default $TEST_UNDECLARED_OUTPUTS_DIR
# (under Bazel: bazel-testlogs/dashboards/dashboard_test/test.outputs/),
# else a temporary directory that is printed.
#
# It starts server.py twice on 127.0.0.1 with --port 0 over one temporary
# database (the first with a push token, the second without Chart.js), and
# adds a pair of runs of their own machine where the second regresses hakmem
# on purpose (the alert marks), then runs e2e/dashboard_e2e.mjs with
# node (API checks, then the page in Debian's /usr/bin/chromium through
# playwright-core), and stops both servers.
#
# Needs: python3, node (>= 20), /usr/bin/chromium (apt-get install chromium;
# override with $CHROMIUM) and dashboards/node_modules (npm ci --prefix
# dashboards). Under Bazel, node_modules comes in as runfiles through the
# //dashboards:node_modules filegroup (a glob over the workspace's
# dashboards/node_modules), so the test sees exactly what npm ci installed.
set -euo pipefail

fail() { printf 'dashboard_test: FAIL: %s\n' "$*" >&2; exit 1; }

if [[ -n "${TEST_SRCDIR:-}" ]]; then
  DASH="$TEST_SRCDIR/${TEST_WORKSPACE:-hakmem}/dashboards"
else
  DASH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fi
[[ -f "$DASH/server.py" ]] || fail "cannot find server.py next to the test (looked in $DASH)"

RUN_JSON="${1:-$DASH/testdata/run_fixture.json}"
if [[ "$RUN_JSON" != /* && -n "${BUILD_WORKING_DIRECTORY:-}" ]]; then
  RUN_JSON="$BUILD_WORKING_DIRECTORY/$RUN_JSON"
fi
[[ -f "$RUN_JSON" ]] || fail "run JSON not found: $RUN_JSON (under bazel test, pass an absolute path)"

TMP="$(mktemp -d "${TEST_TMPDIR:-${TMPDIR:-/tmp}}/dashboard_test.XXXXXX")"
OUT="${2:-${TEST_UNDECLARED_OUTPUTS_DIR:-$TMP/out}}"
mkdir -p "$OUT"

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
NODE_MODULES="$DASH/node_modules"
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=python3  # Debian's python3 has python3-flask and friends; a pyenv one does not
command -v node >/dev/null || fail "node not found (Debian: apt-get install nodejs)"
[[ -x "$CHROMIUM" ]] || fail "$CHROMIUM not found: apt-get install chromium (or set CHROMIUM=...)"
[[ -f "$NODE_MODULES/playwright-core/package.json" && -f "$NODE_MODULES/chart.js/dist/chart.umd.js" ]] ||
  fail "dashboards/node_modules is missing or incomplete: run tools/setup.sh or 'npm ci --prefix dashboards'"

# Chromium puts its singleton socket under TMPDIR, and a socket path must be
# shorter than 108 bytes: Bazel's TEST_TMPDIR is too deep. Use a short
# directory of our own (the linux sandbox leaves /tmp writable), else TMP.
SHORT=""
for base in /tmp /dev/shm; do
  if SHORT="$(mktemp -d "$base/hkdash.XXXXXX" 2>/dev/null)"; then break; fi
  SHORT=""
done
# Chromium and node write caches and crash dumps under HOME and TMPDIR.
export HOME="$TMP/home" TMPDIR="${SHORT:-$TMP}" TZ=UTC
mkdir -p "$HOME"

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap 'cleanup; [[ -n "$SHORT" ]] && rm -rf "$SHORT"' EXIT

# start_server NAME [server flags...]: starts server.py, sets $URL.
start_server() {
  local name="$1"; shift
  # Created here: the background job opens them only when it gets to run.
  : >"$TMP/$name.out"
  : >"$TMP/$name.err"
  "$PY" "$DASH/server.py" --host 127.0.0.1 --port 0 --db "$TMP/dashboard.db" "$@" \
    >"$TMP/$name.out" 2>"$TMP/$name.err" &
  PIDS+=("$!")
  local pid="$!" i
  URL=""
  for i in $(seq 1 150); do
    URL="$(sed -n 's/^hakmem dashboard: \(http:\/\/127\.0\.0\.1:[0-9]*\/\)$/\1/p' "$TMP/$name.out")"
    [[ -n "$URL" ]] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$TMP/$name.err" >&2; fail "server $name exited at start"; }
    sleep 0.1
  done
  cat "$TMP/$name.err" >&2
  fail "server $name printed no URL within 15 s"
}

# The main server needs a token to push, like the CI one; its commit links
# point at a made-up forge (nothing follows them).
TOKEN_FILE="$TMP/token"
"$PY" -c 'import secrets; print(secrets.token_hex(32))' >"$TOKEN_FILE"
COMMIT_URL='https://git.invalid/hakmem/commit/{commit}'
start_server main --token-file "$TOKEN_FILE" --commit-url "$COMMIT_URL"
MAIN_URL="$URL"
start_server nolib --chartjs "$TMP/no-such-dir/chart.umd.js" --quiet
NOLIB_URL="$URL"
echo "dashboard_test: servers at $MAIN_URL and $NOLIB_URL (no Chart.js); pushing $RUN_JSON"

status=0
node "$DASH/e2e/dashboard_e2e.mjs" \
  --url "$MAIN_URL" --nolib-url "$NOLIB_URL" --runs "$RUN_JSON" \
  --node-modules "$NODE_MODULES" --out "$OUT" --chromium "$CHROMIUM" \
  --token-file "$TOKEN_FILE" --commit-url "$COMMIT_URL" \
  --profile "$(mktemp -d "$TMPDIR/profile.XXXXXX")" || status=$?

cleanup
PIDS=()
if grep -q 'Traceback' "$TMP/main.err" "$TMP/nolib.err"; then
  echo "dashboard_test: the server logged a Python traceback:" >&2
  cat "$TMP/main.err" "$TMP/nolib.err" >&2
  status=1
fi
if [[ $status -ne 0 ]]; then
  echo "---- server log (last 60 lines) ----" >&2
  tail -n 60 "$TMP/main.err" >&2
fi
echo "dashboard_test: screenshots in $OUT"
exit "$status"
