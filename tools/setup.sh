#!/usr/bin/env bash
# Installs everything hakmem needs to build, test and benchmark on Debian 12.
# Safe to run again: it only touches apt when a package is missing.
set -euo pipefail

PACKAGES=(
  # Build: Bazel 4.2.3 and the rules it loads (see WORKSPACE).
  bazel-bootstrap
  bazel-rules-java
  build-essential
  pkg-config
  # Libraries for tests and benchmarks (@system_libs in WORKSPACE).
  libgtest-dev
  libgmock-dev
  libbenchmark-dev
  libabsl-dev
  # Tools (libclang-rt-14-dev: libFuzzer, the sanitizer runtimes, and scudo,
  # a hardened allocator the benchmarks and the misuse matrix compare with).
  clang
  libclang-rt-14-dev
  clang-format
  valgrind
  # Coverage (tools/coverage.sh, `bazel coverage`): gcov comes with gcc.
  lcov
  # The heap profile's reader (go tool pprof) and its call graphs (dot).
  golang-go
  graphviz
  python3
  libpython3.11-testsuite
  git
  time
  # The installed man page's check (//tools/install:install_test).
  groff-base
  # Real programs the preload tests and the bench's programs suite run
  # (redis-tools: redis-benchmark; gcc and python3 are above, perl for
  # tools/programs/wordfreq.pl).
  sqlite3
  redis-server
  redis-tools
  perl
  # Allocators to compare against.
  libmimalloc2.0
  libjemalloc2
  libtcmalloc-minimal4
  # The dashboard: its page's packages come from npm; its test drives Chromium.
  # Its server runs on Flask under waitress; runs are checked with jsonschema.
  python3-flask
  python3-waitress
  python3-jsonschema
  nodejs
  chromium
  fonts-dejavu-core
)

usage() {
  cat <<USAGE
Usage: tools/setup.sh [--check] [--help]

Installs hakmem's build and test dependencies with apt-get (as root, or
through sudo), running 'apt-get update' only if a package is missing:
  ${PACKAGES[*]}

Options:
  --check   only report missing packages; exit 1 if any are missing
  --help    show this help
USAGE
}

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

check_only=0
for arg in "$@"; do
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --check) check_only=1 ;;
    *) printf 'tools/setup.sh: unknown argument: %s\n\n' "$arg" >&2; usage >&2; exit 2 ;;
  esac
done

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script needs Debian (12, bookworm)."

is_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == "ii "* ]]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  is_installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  log "all ${#PACKAGES[@]} packages are installed."
elif ((check_only)); then
  log "missing packages: ${missing[*]}"
  exit 1
else
  log "missing packages: ${missing[*]}"
  if [[ "$(id -u)" -eq 0 ]]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
    log "not root: using sudo"
  else
    die "not root and sudo is not available; run as root: tools/setup.sh"
  fi
  export DEBIAN_FRONTEND=noninteractive
  log "running apt-get update"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update \
    || die "apt-get update failed (is Debian's archive reachable?)"
  log "running apt-get install -y --no-install-recommends ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}" \
    || die "apt-get install failed for: ${missing[*]}"
  still_missing=()
  for pkg in "${missing[@]}"; do
    is_installed "$pkg" || still_missing+=("$pkg")
  done
  ((${#still_missing[@]} == 0)) || die "still not installed: ${still_missing[*]}"
  log "installed: ${missing[*]}"
fi

# Sanity checks of what the Bazel build relies on.
command -v bazel >/dev/null 2>&1 || die "bazel not on PATH after installing bazel-bootstrap"
command -v java >/dev/null 2>&1 || die "java not on PATH (bazel-bootstrap should pull in default-jdk-headless)"
[[ -f /usr/share/bazel/rules/java/WORKSPACE ]] \
  || die "/usr/share/bazel/rules/java missing (package bazel-rules-java)"
for mod in gtest gmock benchmark absl_base; do
  pkg-config --exists "$mod" || die "pkg-config module '$mod' not found"
done
# The dashboard's npm packages (Chart.js, playwright-core), from the committed
# lockfile; skipped when node_modules already matches it.
top="$(cd "$(dirname "$0")/.." && pwd)"
lock="$top/dashboards/package-lock.json"
stamp="$top/dashboards/node_modules/.package-lock.json"
if ((check_only)); then
  [[ -f "$stamp" ]] || { log "dashboards/node_modules missing (npm ci --prefix dashboards)"; exit 1; }
elif [[ ! -f "$stamp" || "$lock" -nt "$stamp" ]]; then
  command -v npm >/dev/null 2>&1 || die "npm not found (package nodejs)"
  log "running npm ci --prefix dashboards"
  (cd "$top" && npm ci --prefix dashboards --no-audit --no-fund) || die "npm ci failed for dashboards/"
else
  log "dashboards/node_modules is up to date."
fi

log "ready: $(bazel --version 2>/dev/null | head -n1), $(gcc --version | head -n1)"
