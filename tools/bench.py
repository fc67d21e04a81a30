#!/usr/bin/env python3
"""Benchmark comparison runner for hakmem.

Runs Larson, mtstress and the micro benchmarks (Google Benchmark) under
hakmem and the peer allocators, all on the very same `*_system` binaries
(allocators other than glibc are injected with LD_PRELOAD), alternating the
allocators within a round and rotating their order from round to round; and
the footprint cases: everyday Debian programs (python3, git, ls, sort) with
each allocator preloaded, whose figure is their peak RSS; and the programs
suite (tools/bench_programs.py): real workloads of redis, sqlite3, python3,
gcc, git and perl with each allocator preloaded, timed (redis: requests per
second) with their peak RSS and their output checked. It prints a table
per Larson/mtstress/footprint/programs figure, one matrix for the micro
benchmarks and a summary, writes the results as JSON (schema 1, the dashboard's) and can POST
them to the dashboard. See README.md, "Benchmarks".

    bazel run //tools:bench -- [--quick | --full] [--rounds R] [--bench NAMES]
        [--alloc NAMES] [--json OUT] [--push URL [--token-file FILE]] [--bin-dir DIR]
        [--dry-run] [--strict] [--fail-on-regression] [--push-retries N]
    bazel run //tools:bench -- --push-file FILE --push URL [--token-file FILE]

Exit status: 0; 1 when the runner or a run of hakmem failed (of any allocator
with --strict), or the push failed; 3 with --fail-on-regression when the
dashboard's reply lists regression alerts; 2 for bad arguments.

Under `bazel run` the benchmarks and preload libraries are first built with
--config=release in the workspace (a nested `bazel build`; `bazel run` has
released the server lock by the time this script starts). Startup options for
that nested bazel come from the environment variable BENCH_BAZEL_STARTUP_OPTS
(e.g. "--output_base=/tmp/bazel_bench"); without it the output base of the
`bazel run` that started this script is reused. BAZEL names the bazel binary.

Python 3 standard library, plus python3-jsonschema: the run is checked
against dashboards/run.schema.json (through dashboards/runschema.py, which the
dashboard server uses too) before it is written or pushed.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import re
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

# The run format and its checker live with the dashboard (source tree and
# Bazel runfiles alike have dashboards/ next to tools/).
DASHBOARDS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dashboards")
sys.path.insert(0, DASHBOARDS_DIR)
try:
    import runschema
except ImportError as _exc:  # reported when a run is checked, not at import
    runschema = None
    RUNSCHEMA_IMPORT_ERROR = str(_exc)

# hakmem's variants come from hakmem/variants.bzl, through tools/variants.py.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import variants  # noqa: E402
import bench_programs  # noqa: E402

HAKMEM_VARIANTS = variants.load()

SCHEMA_VERSION = 1
TOKEN_ENV = "HAKMEM_DASHBOARD_TOKEN"
PUSH_RETRIES = 3
PUSH_BACKOFF_MAX_S = 30  # a dashboard down for minutes is better reported than waited for
RETRY_STATUSES = (429, 500, 502, 503, 504)  # the server may answer differently later; 4xx will not
REGRESSION_STATUS = 3  # --fail-on-regression: distinct from 1 (a failure of the runner or of a run)

# --------------------------------------------------------------------------
# What is measured.

PEER_LIB_DIR = "/usr/lib/x86_64-linux-gnu"
# scudo comes with libclang-rt-14-dev, outside PEER_LIB_DIR. Named relative to
# it so that --peer-lib-dir (an empty one in the tests) still governs every peer.
SCUDO_LIB = os.path.relpath(
    "/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.scudo_standalone-x86_64.so",
    PEER_LIB_DIR)

# name -> (variant recorded in JSON, kind, library). kind "hakmem": library
# relative to the bazel-bin directory; "peer": relative to the peer library
# directory; "none": no LD_PRELOAD.
# The default library run with options beyond those of the environment, each
# only when asked for by name (not in the default list): "unguarded", the
# guarded pool off (what the pool costs); "profiled", the heap profiler on at
# its default rate, its profile to /dev/null (what profiling costs).
ALLOCATOR_ENV = {
    "hakmem-unguarded": {"HAKMEM_GUARD_SAMPLE": "0"},
    "hakmem-profiled": {"HAKMEM_PROF": "1", "HAKMEM_PROF_FILE": "/dev/null"},
}
ALLOCATORS = [
    (variants.allocator_name(v), v["short_name"], "hakmem", variants.library(v))
    for v in HAKMEM_VARIANTS
] + [
    ("glibc", "", "none", None),
    ("mimalloc", "", "peer", "libmimalloc.so.2"),
    ("jemalloc", "", "peer", "libjemalloc.so.2"),
    ("tcmalloc", "", "peer", "libtcmalloc_minimal.so.4"),
    # A hardened allocator: the peer of hakmem-hardened, so not among PEER_NAMES.
    ("scudo", "", "peer", SCUDO_LIB),
] + [
    (name, HAKMEM_VARIANTS[0]["short_name"], "hakmem", variants.library(HAKMEM_VARIANTS[0]))
    for name in ALLOCATOR_ENV
]
ALLOCATOR_NAMES = [a[0] for a in ALLOCATORS]
# What --alloc all (and no --alloc) means.
DEFAULT_ALLOCATORS = [n for n in ALLOCATOR_NAMES if n not in ALLOCATOR_ENV]
# "Best peer" is the best of these (hakmem's competition, glibc included).
PEER_NAMES = ("glibc", "mimalloc", "jemalloc", "tcmalloc")
# The default variant first.
HAKMEM_NAMES = tuple(variants.allocator_name(v) for v in HAKMEM_VARIANTS)

LARSON_THREADS = (1, 2, 4)
LARSON_ARGS = "8 1000 5000 100 4141"  # after <seconds>; threads come last
# The original hakmem's Larson configuration (issue 21, ../shared/reference):
# 8-128 B, 1024 blocks per thread, 4 threads; run for the mode's seconds.
LARSON_ORIG_ARGS = "8 128 1024 1 12345"
LARSON_ORIG_THREADS = 4
MTSTRESS_MODES = ("churn", "churn-large", "prodcons", "threadchurn", "realloc", "large",
                  "xthread-mixed", "huge", "oversubscribed", "batch-lifo", "batch-fifo",
                  "workingset", "oneway64", "medium-xthread", "calloc-swap")
MTSTRESS_THREADS = 2
# Modes whose shape is not 2 threads (see hakmem/bench/README.md, mtstress).
# A tuple is one case per thread count, as Larson's t1, t2, t4: calloc-swap
# at 8 and 32 threads (issue 21). oversubscribed: 16 threads per CPU, as
# mtstress itself defaults to.
MTSTRESS_MODE_THREADS = {"huge": 1, "batch-lifo": 1, "batch-fifo": 1, "workingset": 1,
                         "calloc-swap": (8, 32)}
MTSTRESS_OVERSUBSCRIBED_PER_CPU = 16
MTSTRESS_SEED = 4141


def mtstress_thread_counts(mode):
    """The thread counts bench.py runs mtstress mode `mode` with, one case each."""
    if mode == "oversubscribed":
        return (min(1024, MTSTRESS_OVERSUBSCRIBED_PER_CPU * (os.cpu_count() or 1)),)
    t = MTSTRESS_MODE_THREADS.get(mode, MTSTRESS_THREADS)
    return t if isinstance(t, tuple) else (t,)


def mtstress_cases(mode):
    """[(case id, threads)] of mtstress mode `mode`: mtstress/<mode> when it runs
    at one thread count, else mtstress/<mode>/t<N> for each."""
    counts = mtstress_thread_counts(mode)
    if len(counts) == 1:
        return [("mtstress/" + mode, counts[0])]
    return [("mtstress/%s/t%d" % (mode, t), t) for t in counts]


# Per-mode settings. Durations are per run (seconds).
MODES = {
    # About 3 minutes on 2 cores with all six allocators (measured: 2m53s),
    # before the seven issue 11/15 mtstress modes; those add about 1m15s
    # (measured: 36s for the seven at 1 round, all eight allocators).
    "quick": {"rounds": 2, "larson_seconds": 2, "mtstress_seconds": 0.5,
              "micro_min_time": "0.05"},
    # About 21 minutes (measured: 20m56s) before the seven issue 11/15 modes,
    # which add about 16 minutes (7 modes x 8 allocators x 5 rounds x ~3.4 s;
    # not measured).
    "full": {"rounds": 5, "larson_seconds": 5, "mtstress_seconds": 3, "micro_min_time": "0.1"},
}
# medium-xthread adds one mtstress case: 8 allocators x the run time (plus
# start-up) per round, about 5 s at --quick and 25 s at --full (estimated).
# calloc-swap adds two (8 and 32 threads): about 10 s at --quick and 50 s at
# --full (estimated the same way).
# The footprint cases are the same in both modes: 6 programs x 8 allocators
# of 0.01-0.15 s each, a few seconds per round (measured: 18 runs in 2 s).
# The programs cases (sizes in bench_programs.SIZES): 2m13s at --quick with
# all eight allocators (measured on a loaded machine), about 30 minutes at
# --full (estimated); docs/PERFORMANCE.md, "Real programs".

# --------------------------------------------------------------------------
# footprint: everyday programs, each allocator preloaded (glibc: none); the
# figure is the program's peak RSS in KiB (GNU time's %M, as for every other
# case), lower is better. Each run's output is checked, so an allocator that
# corrupts memory fails rather than wins. Their inputs (a git repository, a
# file to sort) are made once per bench run, with glibc and untimed, in a
# temporary directory, which FOOTPRINT_WORK stands for in argv.
FOOTPRINT_WORK = "<work>"
PYTHON3_BIN = "/usr/bin/python3"
GIT_BIN = "/usr/bin/git"
LS_BIN = "/bin/ls"
SORT_BIN = "/usr/bin/sort"
FOOTPRINT_SEED = 4141
FOOTPRINT_GIT_COMMITS = 40        # commits of the repository git log reads
FOOTPRINT_GIT_FILES = 4           # commit i appends lines to file i % 4
FOOTPRINT_GIT_LINES = 20          # lines each commit appends
FOOTPRINT_SORT_LINES = 80000      # random lines, 1..80 characters: about 3.3 MB
FOOTPRINT_LS_DIR = "/usr/include"
FOOTPRINT_MODULES = ("json", "re", "collections", "datetime", "decimal", "email.parser",
                     "http.client", "argparse", "subprocess", "pathlib", "typing", "unittest",
                     "logging", "csv")
# Imports the modules, then uses a few of them; prints FOOTPRINT_IMPORTS_OUT.
FOOTPRINT_IMPORTS_SCRIPT = (
    "import %s\n"
    "d = json.loads(json.dumps({'a': [1, 2, 3]}))\n"
    "print(d['a'][2], re.sub('b+', 'x', 'abbbc'),\n"
    "      decimal.Decimal('1.1') + decimal.Decimal('2.2'), collections.Counter('hakmem')['m'],\n"
    "      datetime.date(2024, 2, 28) + datetime.timedelta(1))\n"
    % ", ".join(FOOTPRINT_MODULES))
FOOTPRINT_IMPORTS_OUT = "3 axc 3.3 2 2024-02-29\n"
# name -> (argv, params: the run as recorded in JSON (at most 200 characters)).
FOOTPRINT_PROGRAMS = {
    "python-pass": ([PYTHON3_BIN, "-c", "pass"], "python3 -c pass"),
    "python-imports": ([PYTHON3_BIN, "-c", FOOTPRINT_IMPORTS_SCRIPT],
                       "python3 -c 'import %s' + use" % ",".join(FOOTPRINT_MODULES)),
    "git-log": ([GIT_BIN, "-C", FOOTPRINT_WORK + "/repo", "log", "--oneline"],
                "git log --oneline (%d commits)" % FOOTPRINT_GIT_COMMITS),
    "git-log-p": ([GIT_BIN, "-C", FOOTPRINT_WORK + "/repo", "log", "-p"],
                  "git log -p (%d commits)" % FOOTPRINT_GIT_COMMITS),
    "ls-R": ([LS_BIN, "-R", FOOTPRINT_LS_DIR], "ls -R %s" % FOOTPRINT_LS_DIR),
    "sort": ([SORT_BIN, FOOTPRINT_WORK + "/lines.txt"],
             "sort lines.txt (%d random lines)" % FOOTPRINT_SORT_LINES),
}
FOOTPRINT_TIMEOUT_S = 120
# programs (tools/bench_programs.py): the sizes of each mode are there; a
# run takes about this long with glibc (redis: the job, server and both
# benchmarks). Measured at --quick: see docs/PERFORMANCE.md, "Real programs".
PROGRAMS_NOMINAL_S = {"quick": 1.2, "full": 5.0}

BINARIES = {
    "larson": "hakmem/bench/larson_system",
    "mtstress": "hakmem/bench/mtstress_system",
    "micro": "hakmem/bench/micro_system",
}
BINARY_TARGETS = {
    "larson": "//hakmem/bench:larson_system",
    "mtstress": "//hakmem/bench:mtstress_system",
    "micro": "//hakmem/bench:micro_system",
}
LIBRARY_TARGETS = {variants.allocator_name(v): variants.library_target(v) for v in HAKMEM_VARIANTS}
for _name in ALLOCATOR_ENV:
    LIBRARY_TARGETS[_name] = variants.library_target(HAKMEM_VARIANTS[0])

THROUGHPUT_RE = re.compile(r"^\s*Throughput\s*=\s*([0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)"
                           r"\s+operations per second\s*$")
PRELOAD_FAILED_RE = re.compile(r"ld\.so: object .* from LD_PRELOAD cannot be preloaded")
TIME_UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
# Environment variables of `bazel run` that children should not inherit.
BAZEL_RUN_ENV = ("RUNFILES_DIR", "RUNFILES_MANIFEST_FILE", "JAVA_RUNFILES", "PYTHONPATH",
                 "PYTHONSAFEPATH")


class Case:
    """One benchmark configuration: a binary and its arguments.

    kind is "larson", "mtstress", "micro", "footprint" or "programs". A micro
    case yields one measurement per Google Benchmark entry. A footprint case
    runs FOOTPRINT_PROGRAMS[program]: argv_tail is its whole command line
    (argv[0] an absolute path, FOOTPRINT_WORK standing for the inputs'
    directory) and its figure is the peak RSS. A programs case runs
    bench_programs' program (argv_tail as bench_programs.argv, None for
    redis) and yields one measurement per bench_programs.figure_names.
    """

    def __init__(self, case_id, kind, benchmark, label, params, argv_tail, threads,
                 nominal_s, timeout_s, program=None):
        self.id = case_id
        self.kind = kind
        self.benchmark = benchmark
        self.label = label
        self.params = params
        self.argv_tail = argv_tail
        self.threads = threads
        self.nominal_s = nominal_s
        self.timeout_s = timeout_s
        self.program = program

    @property
    def higher_is_better(self):
        if self.kind == "programs":
            return bench_programs.metric(self.program)[2]
        return self.kind not in ("micro", "footprint")

    @property
    def metric(self):
        """(metric, unit) of a Larson, mtstress, footprint or programs case's measurements."""
        if self.kind == "footprint":
            return "peak_rss_kb", "KiB"
        if self.kind == "programs":
            return bench_programs.metric(self.program)[:2]
        return "ops_per_sec", "ops/s"

    def __repr__(self):
        return "Case(%s)" % self.id


def all_case_ids():
    ids = ["larson/t%d" % t for t in LARSON_THREADS] + ["larson/orig"]
    ids += [i for m in MTSTRESS_MODES for i, _ in mtstress_cases(m)]
    ids.append("micro")
    ids += ["footprint/%s" % p for p in FOOTPRINT_PROGRAMS]
    ids += ["programs/%s" % p for p in bench_programs.PROGRAMS]
    return ids


def make_cases(mode, selected_ids):
    """The cases of a mode, in the canonical order, restricted to selected_ids."""
    cfg = MODES[mode]
    cases = []
    ls = cfg["larson_seconds"]
    larson_params = "%d %s" % (ls, LARSON_ARGS)
    for t in LARSON_THREADS:
        cases.append(Case("larson/t%d" % t, "larson", "larson", "larson t=%d" % t,
                          larson_params, larson_params.split() + [str(t)], t,
                          ls, 4 * ls + 60))
    orig_params = "%d %s" % (ls, LARSON_ORIG_ARGS)
    t = LARSON_ORIG_THREADS
    cases.append(Case("larson/orig", "larson", "larson", "larson orig t=%d" % t, orig_params,
                      orig_params.split() + [str(t)], t, ls, 4 * ls + 60))
    ms = cfg["mtstress_seconds"]
    for m in MTSTRESS_MODES:
        # A mode's thread counts share the benchmark name, as Larson's do.
        for case_id, t in mtstress_cases(m):
            params = "--mode %s --seconds %g --seed %d" % (m, ms, MTSTRESS_SEED)
            argv = ["--mode", m, "--threads", str(t), "--seconds", "%g" % ms,
                    "--seed", str(MTSTRESS_SEED)]
            cases.append(Case(case_id, "mtstress", "mtstress/" + m, "mtstress %s t=%d" % (m, t),
                              params, argv, t, ms, int(4 * ms) + 60))
    mt = cfg["micro_min_time"]
    params = "--benchmark_min_time=%s" % mt
    # The nominal duration is a guess until the first micro run is timed.
    cases.append(Case("micro", "micro", "micro", "micro", params, [params], 1,
                      5.0 if mode == "quick" else 10.0, 300 if mode == "quick" else 1200))
    for name, (argv, params) in FOOTPRINT_PROGRAMS.items():
        cases.append(Case("footprint/" + name, "footprint", "footprint/" + name,
                          "footprint " + name, params, list(argv), 1, 0.1, FOOTPRINT_TIMEOUT_S,
                          program=name))
    for name in bench_programs.PROGRAMS:
        argv = bench_programs.argv(name, mode)
        cases.append(Case("programs/" + name, "programs", "programs/" + name,
                          "programs " + name, bench_programs.params(name, mode),
                          list(argv) if argv else None, 1, PROGRAMS_NOMINAL_S[mode],
                          bench_programs.PROGRAM_TIMEOUT_S[mode], program=name))
    return [c for c in cases if c.id in selected_ids]


def parse_bench_list(text):
    """'larson,mtstress/churn' -> case ids, canonical order. Raises ValueError.

    A group (larson, mtstress, ...) picks its cases; so does a mode run at
    several thread counts (mtstress/calloc-swap: mtstress/calloc-swap/t8, ...).
    """
    ids = all_case_ids()
    groups = sorted(set(i.split("/")[0] for i in ids))
    groups += sorted(set(i.rsplit("/", 1)[0] for i in ids if i.count("/") > 1))
    chosen = set()
    tokens = [t.strip() for t in text.split(",") if t.strip()]
    if not tokens:
        raise ValueError("empty benchmark list")
    for tok in tokens:
        if tok == "all":
            chosen.update(ids)
        elif tok in ids:
            chosen.add(tok)
        elif tok in groups:
            chosen.update(i for i in ids if i.startswith(tok + "/"))
        else:
            raise ValueError("unknown benchmark %r (choose from: all, %s, %s)"
                             % (tok, ", ".join(groups), ", ".join(ids)))
    return [i for i in ids if i in chosen]


def parse_alloc_list(text):
    """'glibc,hakmem' -> allocator names in the canonical order. Raises ValueError."""
    tokens = [t.strip() for t in text.split(",") if t.strip()]
    if not tokens:
        raise ValueError("empty allocator list")
    for tok in tokens:
        if tok not in ALLOCATOR_NAMES and tok != "all":
            raise ValueError("unknown allocator %r (choose from: all, %s)"
                             % (tok, ", ".join(ALLOCATOR_NAMES)))
    if "all" in tokens:  # the default list, and any other named beside it
        return [n for n in ALLOCATOR_NAMES if n in DEFAULT_ALLOCATORS or n in tokens]
    return [n for n in ALLOCATOR_NAMES if n in tokens]


# --------------------------------------------------------------------------
# Command line.

def _type_from(fn):
    def conv(text):
        try:
            return fn(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc))
    conv.__name__ = fn.__name__
    return conv


def _rounds(text):
    try:
        v = int(text)
    except ValueError:
        raise ValueError("expected an integer, got %r" % text)
    if not 1 <= v <= 100:
        raise ValueError("rounds must be in 1..100")
    return v


def _url(text):
    if not re.match(r"^https?://[^/\s]+", text):
        raise ValueError("expected an http:// or https:// URL, got %r" % text)
    return text


def _retries(text):
    if not re.fullmatch(r"[0-9]+", text) or not 0 <= int(text) <= 10:
        raise ValueError("expected an integer from 0 to 10, got %r" % text)
    return int(text)


def build_parser():
    p = argparse.ArgumentParser(
        prog="bench",
        description="Compare hakmem with glibc, mimalloc, jemalloc, tcmalloc and scudo on Larson, "
                    "mtstress and the micro benchmarks (release builds, same binary for "
                    "every allocator, LD_PRELOAD), on the peak RSS of everyday "
                    "programs with each allocator preloaded (footprint), and on real programs' "
                    "workloads with each allocator preloaded (programs: redis, sqlite3, python3, "
                    "gcc, git, perl; time or requests per second, and peak RSS).",
        epilog="Benchmarks: all, larson, mtstress, micro, footprint, programs, or one of %s. "
               "Allocators: all, %s. "
               "Env: BAZEL (bazel binary), BENCH_BAZEL_STARTUP_OPTS (startup options for the "
               "nested bazel, e.g. --output_base=/tmp/bazel_bench)."
               % (", ".join(all_case_ids()), ", ".join(ALLOCATOR_NAMES)))
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="short runs, %d rounds, about 3 minutes (default)"
                      % MODES["quick"]["rounds"])
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="%d-second Larson, %d rounds, about 21 minutes"
                      % (MODES["full"]["larson_seconds"], MODES["full"]["rounds"]))
    p.add_argument("--rounds", type=_type_from(_rounds), metavar="R",
                   help="rounds per allocator and benchmark (overrides the mode's default)")
    p.add_argument("--bench", type=_type_from(parse_bench_list), default=all_case_ids(),
                   metavar="NAMES", help="comma-separated benchmarks (default: all)")
    p.add_argument("--alloc", type=_type_from(parse_alloc_list), default=list(DEFAULT_ALLOCATORS),
                   metavar="NAMES", help="comma-separated allocators (default: all)")
    p.add_argument("--json", metavar="OUT",
                   help="write results here (default under bazel run: "
                        "<workspace>/bench-results/run-<time>.json)")
    p.add_argument("--push", type=_type_from(_url), metavar="URL",
                   help="POST the JSON to URL/api/runs")
    p.add_argument("--push-file", metavar="FILE",
                   help="run no benchmark: check the saved run FILE (a --json output) and push it to "
                        "--push URL")
    p.add_argument("--push-retries", type=_type_from(_retries), default=PUSH_RETRIES, metavar="N",
                   help="retry a push that got no answer, 429 or 5xx up to N times, waiting 2, 4, 8, ... "
                        "(at most %d) seconds between tries (default %%(default)s)" % PUSH_BACKOFF_MAX_S)
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit with status %d when the dashboard's reply lists regression alerts"
                        % REGRESSION_STATUS)
    p.add_argument("--strict", action="store_true",
                   help="a failed run of a peer allocator fails the whole run too (by default only "
                        "hakmem's failures do; a peer's are reported in the tables)")
    p.add_argument("--token-file", metavar="FILE",
                   help="the dashboard's push token, sent as 'Authorization: Bearer' "
                        "(default: $%s)" % TOKEN_ENV)
    p.add_argument("--bin-dir", metavar="DIR",
                   help="use binaries from DIR (a bazel-bin) instead of building")
    p.add_argument("--peer-lib-dir", default=PEER_LIB_DIR, metavar="DIR",
                   help="where the peer allocators' .so files are (default %(default)s)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the build and the planned runs, run nothing")
    p.set_defaults(mode="quick")
    return p


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.push_file and not args.push:
        parser.error("--push-file needs --push URL (where to send it)")
    if args.fail_on_regression and not args.push:
        parser.error("--fail-on-regression needs --push URL (the alerts come from the dashboard)")
    if args.rounds is None:
        args.rounds = MODES[args.mode]["rounds"]
    return args


# --------------------------------------------------------------------------
# Statistics and formatting (pure).

def summarize(values):
    """(median, min, max) of a non-empty list."""
    if not values:
        raise ValueError("no values")
    return statistics.median(values), min(values), max(values)


def spread_pct(median, lo, hi):
    """(max - min) / median in percent; None if undefined."""
    if not median:
        return None
    return (hi - lo) / median * 100.0


def ratio(value, reference, higher_is_better):
    """How much better value is than reference: > 1 means better.

    For higher-is-better metrics that is value / reference, for
    lower-is-better ones reference / value. None when either is missing or
    not positive.
    """
    if value is None or reference is None or value <= 0 or reference <= 0:
        return None
    return value / reference if higher_is_better else reference / value


def best_of(medians, names, higher_is_better):
    """(name, median) of the best of names present in medians, or (None, None)."""
    cands = [(n, medians[n]) for n in names if medians.get(n) is not None]
    if not cands:
        return None, None
    pick = max if higher_is_better else min
    return pick(cands, key=lambda nv: nv[1])


def geomean(values):
    vals = [v for v in values if v is not None and v > 0]
    if not vals:
        return None
    return statistics.geometric_mean(vals)


def fmt_si(v):
    """71234567 -> '71.2M'; three significant digits."""
    if v is None:
        return "-"
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return _sig3(v / div) + suffix
    return _sig3(v)


def _sig3(x):
    ax = abs(x)
    if ax >= 100:
        return "%.0f" % x
    if ax >= 10:
        return "%.1f" % x
    return "%.2f" % x


def fmt_value(v, unit):
    if v is None:
        return "-"
    if unit == "ns":
        return _sig3(v) if v < 1000 else "{:,.0f}".format(v)
    if unit == "KiB":
        return "{:,.0f}".format(v)
    return fmt_si(v)


def fmt_ratio(r):
    return "-" if r is None else "%.2fx" % r


def fmt_pct(p):
    return "-" if p is None else "%.1f%%" % p


def fmt_duration(seconds):
    seconds = int(round(max(0.0, seconds)))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    h, rest = divmod(seconds, 3600)
    return "%dh%02dm" % (h, rest // 60)


def format_table(header, rows, right_align=None):
    """Aligned text table. right_align: set of column indexes (default: all but 0).

    A row may be a string: it is printed as is (for notes spanning columns).
    """
    ncols = len(header)
    if right_align is None:
        right_align = set(range(1, ncols))
    cell_rows = [r for r in rows if not isinstance(r, str)]
    for r in cell_rows:
        if len(r) != ncols:
            raise ValueError("row has %d cells, header %d" % (len(r), ncols))
    widths = [max([len(header[i])] + [len(r[i]) for r in cell_rows]) for i in range(ncols)]

    def line(cells):
        out = []
        for i, c in enumerate(cells):
            out.append(c.rjust(widths[i]) if i in right_align else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    lines = [line(header), line(["-" * w for w in widths])]
    for r in rows:
        lines.append(r if isinstance(r, str) else line(r))
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Output parsing (pure).

def parse_throughput(stdout):
    """The N of the last non-empty line 'Throughput = N operations per second', or None."""
    lines = [l for l in stdout.splitlines() if l.strip()]
    if not lines:
        return None
    m = THROUGHPUT_RE.match(lines[-1])
    if not m:
        return None
    v = float(m.group(1))
    return v if v > 0 and v != float("inf") else None


def threads_from_name(name):
    m = re.search(r"/threads:(\d+)", name)
    return int(m.group(1)) if m else 1


def micro_ns_per_op(entry):
    """ns per operation of one Google Benchmark entry (CPU time based).

    With an items_per_second counter (SetItemsProcessed: one item is one
    operation as the benchmark defines it, e.g. 1 malloc + 1 free) this is
    1e9 / items_per_second. Google Benchmark computes that rate over the
    benchmark thread's CPU time (unless the benchmark asked for UseRealTime).
    Without the counter it is cpu_time per iteration. CPU time rather than
    real time, because it does not count the time the thread was preempted
    by other work on the machine.
    """
    ips = entry.get("items_per_second")
    if isinstance(ips, (int, float)) and not isinstance(ips, bool) and ips > 0:
        return 1e9 / float(ips)
    unit = entry.get("time_unit", "ns")
    if unit not in TIME_UNIT_NS:
        raise ValueError("unknown time_unit %r" % unit)
    try:
        return float(entry["cpu_time"]) * TIME_UNIT_NS[unit]
    except (KeyError, TypeError, ValueError):
        raise ValueError("benchmark %r has neither items_per_second nor cpu_time"
                         % entry.get("name"))


def parse_micro_json(text):
    """Google Benchmark JSON -> ({name: (ns_per_op, threads)}, {name: error}).

    ns_per_op as micro_ns_per_op. Aggregate entries (mean/median/stddev of
    repetitions) are skipped; if a benchmark has several repetitions the
    median of them is taken. Raises ValueError if the text is not benchmark
    JSON.
    """
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError("not JSON: %s" % exc)
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ValueError("no 'benchmarks' list")
    reps = {}
    threads = {}
    errors = {}
    for b in doc["benchmarks"]:
        if not isinstance(b, dict) or not isinstance(b.get("name"), str):
            raise ValueError("malformed benchmark entry")
        if b.get("run_type") == "aggregate":
            continue
        name = b.get("run_name") or b["name"]
        if b.get("error_occurred"):
            errors[name] = str(b.get("error_message") or "error_occurred")
            continue
        ns = micro_ns_per_op(b)
        if not 0 < ns < float("inf"):
            errors[name] = "non-positive time %r" % ns
            continue
        reps.setdefault(name, []).append(ns)
        t = b.get("threads")
        threads[name] = t if isinstance(t, int) and t > 0 else threads_from_name(name)
    values = {n: (statistics.median(v), threads[n]) for n, v in reps.items()}
    return values, errors


def describe_status(exit_code, term_signal):
    if term_signal:
        try:
            sname = signal.Signals(term_signal).name
        except ValueError:
            sname = "signal %d" % term_signal
        return "killed by %s" % sname
    return "exit status %d" % exit_code


# --------------------------------------------------------------------------
# Running a process.

class ProcResult:
    def __init__(self):
        self.exit_code = None      # int, or None if killed by a signal
        self.term_signal = 0
        self.timed_out = False
        self.spawn_error = None
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self.peak_rss_kb = 0
        self.stdout = ""
        self.stderr = ""


def clean_env(preload, extra=None):
    env = {k: v for k, v in os.environ.items() if k not in BAZEL_RUN_ENV and k != "LD_PRELOAD"}
    if preload:
        env["LD_PRELOAD"] = preload
    env.update(extra or {})
    return env


def _wait_with_timeout(pid, timeout):
    """wait4(pid) with a deadline; returns (status, rusage, timed_out)."""
    deadline = time.monotonic() + timeout
    pidfd = None
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        while True:
            wpid, status, ru = os.wait4(pid, os.WNOHANG)
            if wpid == pid:
                return status, ru, False
            left = deadline - time.monotonic()
            if left <= 0:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
                _, status, ru = os.wait4(pid, 0)
                return status, ru, True
            if pidfd is not None:
                select.select([pidfd], [], [], left)
            else:
                time.sleep(min(0.01, left))
    finally:
        if pidfd is not None:
            os.close(pidfd)


TIME_BIN = "/usr/bin/time"
ENV_BIN = "/usr/bin/env"
RSS_LINE_RE = re.compile(r"^BENCH_PEAK_RSS_KB=(\d+)\s*$", re.M)
TIME_SIGNAL_RE = re.compile(r"^Command terminated by signal (\d+)", re.M)


def rss_helper_available():
    return os.access(TIME_BIN, os.X_OK) and os.access(ENV_BIN, os.X_OK)


def wrap_with_time(argv, env, report_path):
    """argv and env that run argv under GNU time, which writes the peak RSS.

    Why: wait4's ru_maxrss of a child that this (Python) process spawned is
    never below this process's own peak RSS, because Linux carries the
    high-water mark of the pre-exec address space over into the child. GNU
    time is small, so its children do not inherit a noticeable floor. The
    preload goes to the benchmark only (through env), not to time.
    """
    env = dict(env)
    preload = env.pop("LD_PRELOAD", None)
    inner = ([ENV_BIN, "LD_PRELOAD=" + preload] if preload else []) + list(argv)
    return [TIME_BIN, "-f", "BENCH_PEAK_RSS_KB=%M", "-o", report_path, "--"] + inner, env


def parse_time_report(text):
    """GNU time -o report -> (peak_rss_kb or None, terminating signal or 0)."""
    m = RSS_LINE_RE.search(text)
    s = TIME_SIGNAL_RE.search(text)
    return (int(m.group(1)) if m else None), (int(s.group(1)) if s else 0)


def run_process(argv, env, timeout, use_time=None):
    """Runs argv (argv[0] an absolute path) in its own session, capturing output.

    Status, wall time and user+system CPU time come from wait4 (CPU time
    includes the children it waited for). Peak RSS comes from GNU time when
    /usr/bin/time exists (see wrap_with_time), else from wait4's ru_maxrss.
    On timeout the whole process group is killed.
    """
    if use_time is None:
        use_time = rss_helper_available()
    res = ProcResult()
    report = None
    if use_time:
        fd, report = tempfile.mkstemp(prefix="bench-rss-")
        os.close(fd)
        spawn_argv, spawn_env = wrap_with_time(argv, env, report)
    else:
        spawn_argv, spawn_env = list(argv), env
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
                open(os.devnull, "rb") as devnull:
            actions = [
                (os.POSIX_SPAWN_DUP2, devnull.fileno(), 0),
                (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
            ]
            if not (os.path.isfile(argv[0]) and os.access(argv[0], os.X_OK)):
                res.spawn_error = "cannot start %s: not an executable file" % argv[0]
                return res
            start = time.monotonic()
            try:
                pid = os.posix_spawn(spawn_argv[0], spawn_argv, spawn_env,
                                     file_actions=actions, setsid=True)
            except OSError as exc:
                res.spawn_error = "cannot start %s: %s" % (spawn_argv[0], exc.strerror or exc)
                return res
            try:
                status, ru, res.timed_out = _wait_with_timeout(pid, timeout)
            except BaseException:
                # Ctrl-C and the like: do not leave the benchmark running.
                try:
                    os.killpg(pid, signal.SIGKILL)
                    os.wait4(pid, 0)
                except OSError:
                    pass
                raise
            res.wall_s = time.monotonic() - start
            if os.WIFSIGNALED(status):
                res.term_signal = os.WTERMSIG(status)
            else:
                res.exit_code = os.WEXITSTATUS(status)
            res.cpu_s = ru.ru_utime + ru.ru_stime
            res.peak_rss_kb = ru.ru_maxrss
            if report is not None:
                try:
                    with open(report, encoding="utf-8", errors="replace") as f:
                        rss, sig = parse_time_report(f.read())
                except OSError:
                    rss, sig = None, 0
                if rss is not None:
                    res.peak_rss_kb = rss
                if sig and not res.term_signal:
                    # time exits with 128 + N when its child died of signal N.
                    res.term_signal, res.exit_code = sig, None
            out.seek(0)
            err.seek(0)
            res.stdout = out.read().decode("utf-8", "replace")
            res.stderr = err.read().decode("utf-8", "replace")
    finally:
        if report is not None:
            try:
                os.unlink(report)
            except OSError:
                pass
    return res


# --------------------------------------------------------------------------
# footprint: the programs' inputs, environment and output checks.

GIT_LOG_ONELINE_RE = re.compile(r"^[0-9a-f]{7,64} (.*)$")
SORT_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 "


def footprint_env(preload, program, extra=None):
    """The environment of a footprint run: the benchmarks' (clean_env), in
    the C locale, and for git without the user's configuration or GIT_*."""
    env = clean_env(preload, extra)
    env["LC_ALL"] = "C"
    if program.startswith("git"):
        for k in [k for k in env if k.startswith("GIT_")]:
            del env[k]
        env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                    "GIT_TERMINAL_PROMPT": "0"})
    return env


def git_commit_subject(i):
    return "commit %d: append to file%d.txt" % (i, i % FOOTPRINT_GIT_FILES)


def git_fast_import_stream(commits, files, lines):
    """A git fast-import stream of `commits` commits on refs/heads/main;
    commit i (1-based) appends `lines` lines to file<i % files>.txt."""
    content = {}
    out = []
    for i in range(1, commits + 1):
        name = "file%d.txt" % (i % files)
        content[name] = content.get(name, "") + "".join(
            "line %d.%d of %s\n" % (i, j, name) for j in range(lines))
        msg = git_commit_subject(i) + "\n"
        when = "%d +0000" % (1700000000 + 3600 * i)
        out.append("commit refs/heads/main\nmark :%d\n" % i)
        out.append("author Bench <bench@hakmem.invalid> %s\n" % when)
        out.append("committer Bench <bench@hakmem.invalid> %s\n" % when)
        out.append("data %d\n%s" % (len(msg.encode()), msg))
        if i > 1:
            out.append("from :%d\n" % (i - 1))
        data = content[name].encode()
        out.append("M 100644 inline %s\ndata %d\n%s\n" % (name, len(data), content[name]))
    return "".join(out)


def sort_input_lines(n, seed):
    """n random lines (without their newlines) of 1..80 characters of SORT_ALPHABET."""
    rng = random.Random(seed)
    return ["".join(rng.choices(SORT_ALPHABET, k=rng.randint(1, 80))) for _ in range(n)]


def digest(text):
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


class FootprintInputs:
    """The footprint programs' inputs, in a temporary directory, and what each
    program must print. Made once per bench run, with glibc, not timed.

    expect[program] is what the program's checker compares the output with;
    errors[program] says why a program cannot be measured (its runs fail
    with it).
    """

    def __init__(self, programs, parent=None):
        self.dir = tempfile.mkdtemp(prefix="bench-footprint-", dir=parent)
        self.expect = {}
        self.errors = {}
        for p in programs:
            try:
                getattr(self, "_prepare_" + p.replace("-", "_"))()
            except (OSError, subprocess.SubprocessError, ValueError) as exc:
                self.errors[p] = "cannot prepare its input: %s" % exc

    def argv(self, case):
        return [a.replace(FOOTPRINT_WORK, self.dir) for a in case.argv_tail]

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def _run(self, argv, program, **kw):
        p = subprocess.run(argv, env=footprint_env(None, program), capture_output=True,
                           timeout=120, **kw)
        if p.returncode != 0:
            raise ValueError("%s: exit status %d: %s" % (
                " ".join(argv[:3]), p.returncode,
                stderr_tail(p.stderr.decode("utf-8", "replace"), 2)))
        return p.stdout.decode("utf-8", "replace")

    def _prepare_python_pass(self):
        self.expect["python-pass"] = ""

    def _prepare_python_imports(self):
        self.expect["python-imports"] = FOOTPRINT_IMPORTS_OUT

    def _prepare_git(self, program):
        repo = os.path.join(self.dir, "repo")
        if not os.path.isdir(repo):
            self._run([GIT_BIN, "init", "-q", repo], program)
            stream = git_fast_import_stream(FOOTPRINT_GIT_COMMITS, FOOTPRINT_GIT_FILES,
                                            FOOTPRINT_GIT_LINES)
            self._run([GIT_BIN, "-C", repo, "fast-import", "--quiet"], program,
                      input=stream.encode())
            self._run([GIT_BIN, "-C", repo, "symbolic-ref", "HEAD", "refs/heads/main"], program)
        self.expect[program] = {
            "subjects": [git_commit_subject(i) for i in range(FOOTPRINT_GIT_COMMITS, 0, -1)],
            "added_lines": FOOTPRINT_GIT_COMMITS * FOOTPRINT_GIT_LINES,
        }

    def _prepare_git_log(self):
        self._prepare_git("git-log")

    def _prepare_git_log_p(self):
        self._prepare_git("git-log-p")
        # The counts do not see a changed byte in a diff: glibc's run is the reference too.
        out = self._run([GIT_BIN, "-C", os.path.join(self.dir, "repo"), "log", "-p"], "git-log-p")
        expect = self.expect["git-log-p"]
        problem = check_footprint_output("git-log-p", out, expect)
        if problem:
            raise ValueError("glibc's own run: " + problem)
        expect["sha256"] = digest(out)

    def _prepare_ls_R(self):
        # No independent oracle for a directory tree: glibc's run is the reference.
        out = self._run([LS_BIN, "-R", FOOTPRINT_LS_DIR], "ls-R")
        lines = out.count("\n")
        if lines < 10:
            raise ValueError("ls -R %s printed only %d lines" % (FOOTPRINT_LS_DIR, lines))
        self.expect["ls-R"] = {"lines": lines, "sha256": digest(out)}

    def _prepare_sort(self):
        lines = sort_input_lines(FOOTPRINT_SORT_LINES, FOOTPRINT_SEED)
        with open(os.path.join(self.dir, "lines.txt"), "w", encoding="ascii") as f:
            f.write("".join(l + "\n" for l in lines))
        # In the C locale sort compares bytes, as Python compares these ASCII strings.
        self.expect["sort"] = {"lines": len(lines),
                               "sha256": digest("".join(l + "\n" for l in sorted(lines)))}


def _count_mismatch(what, got, want):
    return "%s: %d lines, expected %d" % (what, got, want)


def check_footprint_output(program, stdout, expect):
    """Why a footprint program's output is wrong, or None if it is right."""
    if program in ("python-pass", "python-imports"):
        if stdout != expect:
            return "printed %r, expected %r" % (stdout[:80], expect)
        return None
    lines = stdout.splitlines()
    if program == "git-log":
        if len(lines) != len(expect["subjects"]):
            return _count_mismatch("git log --oneline", len(lines), len(expect["subjects"]))
        for i, (line, subject) in enumerate(zip(lines, expect["subjects"])):
            m = GIT_LOG_ONELINE_RE.match(line)
            if not m or m.group(1) != subject:
                return "git log --oneline line %d is %r, expected a hash and %r" % (
                    i + 1, line[:80], subject)
        return None
    if program == "git-log-p":  # the same check as the programs suite's
        return bench_programs.check_git_log_p(stdout, expect)
    if program == "ls-R":
        if len(lines) != expect["lines"]:
            return _count_mismatch("ls -R", len(lines), expect["lines"])
        if digest(stdout) != expect["sha256"]:
            return "ls -R: the listing differs from glibc's reference run"
        return None
    if program == "sort":
        if len(lines) != expect["lines"]:
            return _count_mismatch("sort", len(lines), expect["lines"])
        for i in range(1, len(lines)):
            if lines[i - 1] > lines[i]:
                return "sort: line %d is not in order" % (i + 1)
        if digest(stdout) != expect["sha256"]:
            return "sort: sorted, but not the input's lines"
        return None
    raise ValueError("unknown footprint program %r" % program)


# --------------------------------------------------------------------------
# Runs and their evaluation.

class Allocator:
    def __init__(self, name, variant, preload):
        self.name = name
        self.variant = variant
        self.preload = preload  # absolute path or None
        self.env = ALLOCATOR_ENV.get(name, {})

    def __repr__(self):
        return "Allocator(%s)" % self.name


class Job:
    def __init__(self, index, case, alloc, round_no):
        self.index = index
        self.case = case
        self.alloc = alloc
        self.round = round_no
        self.proc = None
        self.error = None       # why the run failed, or None
        self.value = None       # larson/mtstress: ops/s; footprint: peak RSS in KiB
        self.micro = {}         # micro: name -> (ns, threads)
        self.micro_errors = {}  # micro: name -> error
        self.figures = {}       # programs: figure name -> value (bench_programs.figure_names)


def rotate(items, k):
    if not items:
        return []
    k %= len(items)
    return items[k:] + items[:k]


def plan_jobs(cases, allocs, rounds):
    """Round by round; within a round each case runs every allocator back to
    back, and the allocator order is rotated by one from round to round."""
    jobs = []
    for r in range(rounds):
        order = rotate(list(allocs), r)
        for case in cases:
            for a in order:
                jobs.append(Job(len(jobs) + 1, case, a, r + 1))
    return jobs


def evaluate(job, proc, micro_text=None, inputs=None, programs=None):
    """Sets job.error / job.value / job.micro / job.figures from a finished process.

    micro_text: a micro run's benchmark JSON. inputs: a footprint run's
    FootprintInputs, whose expectations its output is checked against.
    programs: a programs run's (figures, error) from bench_programs.run, which
    checked its output; its process's own failure is reported first.
    """
    job.proc = proc
    if proc.spawn_error:
        job.error = proc.spawn_error
        return
    if proc.timed_out:
        job.error = "timed out after %ds" % job.case.timeout_s
        return
    if proc.term_signal or proc.exit_code != 0:
        job.error = describe_status(proc.exit_code, proc.term_signal)
        return
    if job.alloc.preload and PRELOAD_FAILED_RE.search(proc.stderr):
        job.error = "LD_PRELOAD was not applied (ld.so refused %s)" % job.alloc.preload
        return
    if job.case.kind == "micro":
        try:
            job.micro, job.micro_errors = parse_micro_json(micro_text or "")
        except ValueError as exc:
            job.error = "unreadable benchmark JSON: %s" % exc
            return
        if not job.micro:
            job.error = "no benchmark results"
        return
    if job.case.kind == "programs":
        figures, problem = programs if programs is not None else (None, "not checked")
        if problem:
            job.error = "wrong output: " + problem
        elif not figures:
            job.error = "no figures"
        else:
            job.figures = dict(figures)
        return
    if job.case.kind == "footprint":
        program = job.case.program
        if inputs is None or program not in inputs.expect:
            job.error = "no expected output to check against"
            return
        problem = check_footprint_output(program, proc.stdout, inputs.expect[program])
        if problem:
            job.error = "wrong output: " + problem
        elif not proc.peak_rss_kb or proc.peak_rss_kb <= 0:
            job.error = "no peak RSS"
        else:
            job.value = proc.peak_rss_kb
        return
    job.value = parse_throughput(proc.stdout)
    if job.value is None:
        job.error = "no 'Throughput = N operations per second' line"


def stderr_tail(text, lines=5):
    tail = [l for l in text.splitlines() if l.strip()][-lines:]
    return "\n".join(tail)


class Measurement:
    """Aggregated figures of one (benchmark, allocator) over rounds."""

    def __init__(self, case, alloc, benchmark, threads, metric, unit):
        self.case = case
        self.alloc = alloc
        self.benchmark = benchmark
        self.threads = threads
        self.metric = metric
        self.unit = unit
        self.values = []
        self.walls = []
        self.cpus = []
        self.rss = []
        self.failed = 0
        self.errors = []

    @property
    def higher_is_better(self):
        return self.case.higher_is_better

    @property
    def ok(self):
        return bool(self.values)

    def stats(self):
        return summarize(self.values) if self.values else (None, None, None)

    def median_of(self, xs):
        return statistics.median(xs) if xs else None


def aggregate(jobs, cases, allocs):
    """jobs -> (ordered list of groups, failures). A group is
    (title, case, [Measurement per allocator])."""
    groups = []
    failures = []
    for job in jobs:
        if job.error:
            failures.append(job)
    for case in cases:
        case_jobs = [j for j in jobs if j.case is case]
        if case.kind == "programs":
            groups.extend(_program_groups(case, case_jobs, allocs))
            continue
        if case.kind != "micro":
            ms = []
            metric, unit = case.metric
            for a in allocs:
                m = Measurement(case, a, case.benchmark, case.threads, metric, unit)
                for j in case_jobs:
                    if j.alloc is not a:
                        continue
                    if j.error:
                        m.failed += 1
                        m.errors.append(j.error)
                    elif j.proc is not None:
                        m.values.append(j.value)
                        m.walls.append(j.proc.wall_s)
                        m.cpus.append(j.proc.cpu_s)
                        m.rss.append(j.proc.peak_rss_kb)
                ms.append(m)
            groups.append((case.label, case, ms))
            continue
        # Micro: one group per benchmark name, in order of first appearance.
        names = []
        for j in case_jobs:
            for n in list(j.micro) + list(j.micro_errors):
                if n not in names:
                    names.append(n)
        if not names and case_jobs:
            # Every micro run failed: one group that says so.
            ms = []
            for a in allocs:
                m = Measurement(case, a, "micro", 1, "ns_per_op", "ns")
                for j in case_jobs:
                    if j.alloc is a and j.error:
                        m.failed += 1
                        m.errors.append(j.error)
                ms.append(m)
            groups.append(("micro", case, ms))
        for n in names:
            ms = []
            threads = 1
            for a in allocs:
                for j in case_jobs:
                    if n in j.micro:
                        threads = j.micro[n][1]
                m = Measurement(case, a, "micro/" + n, threads, "ns_per_op", "ns")
                for j in case_jobs:
                    if j.alloc is not a or j.proc is None and not j.error:
                        continue
                    if j.error:
                        m.failed += 1
                        m.errors.append(j.error)
                    elif n in j.micro:
                        m.values.append(j.micro[n][0])
                        m.walls.append(j.proc.wall_s)
                        m.cpus.append(j.proc.cpu_s)
                        m.rss.append(j.proc.peak_rss_kb)
                    else:
                        m.failed += 1
                        m.errors.append(j.micro_errors.get(n, "missing from the output"))
                ms.append(m)
            for m in ms:
                m.threads = threads
            groups.append((n, case, ms))
    return groups, failures


def _program_groups(case, case_jobs, allocs):
    """A programs case's groups: one per figure (bench_programs.figure_names).
    A run that failed counts as failed in each; peak RSS and wall time are
    the run's."""
    metric, unit = case.metric
    groups = []
    for name in bench_programs.figure_names(case.program):
        benchmark = bench_programs.benchmark_name(case.program, name)
        ms = []
        for a in allocs:
            m = Measurement(case, a, benchmark, case.threads, metric, unit)
            for j in case_jobs:
                if j.alloc is not a or j.proc is None and not j.error:
                    continue
                if j.error:
                    m.failed += 1
                    m.errors.append(j.error)
                elif name in j.figures:
                    m.values.append(j.figures[name])
                    m.walls.append(j.proc.wall_s)
                    m.cpus.append(j.proc.cpu_s)
                    m.rss.append(j.proc.peak_rss_kb)
                else:
                    m.failed += 1
                    m.errors.append("no figure %s" % name)
            ms.append(m)
        groups.append(("programs " + benchmark[len("programs/"):], case, ms))
    return groups


def micro_failures(jobs):
    """Per-benchmark errors reported inside otherwise successful micro runs."""
    out = []
    for j in jobs:
        if j.case.kind == "micro" and not j.error:
            for n, e in j.micro_errors.items():
                out.append((j, n, e))
    return out


# --------------------------------------------------------------------------
# Tables.

def _plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def _medians(ms):
    return {m.alloc.name: m.stats()[0] for m in ms}


def group_table(title, case, ms, rounds):
    """One aligned table for one Larson, mtstress or footprint case.

    A footprint case's figure is the peak RSS itself, so its table has the
    median wall time where the others have their peak RSS columns.
    """
    hib = case.higher_is_better
    unit = ms[0].unit if ms else ""
    medians = _medians(ms)
    rss = {m.alloc.name: m.median_of(m.rss) for m in ms}
    glibc = medians.get("glibc")
    best_name, best_val = best_of(medians, PEER_NAMES, hib)
    footprint = case.kind == "footprint"
    if footprint:
        head = "%s  [%s; peak RSS in %s, lower is better; %s]" % (
            title, case.params, unit, _plural(rounds, "round"))
        header = ["allocator", "median", "min..max", "spread", "vs glibc", "vs best peer",
                  "wall s"]
    else:
        if case.kind == "programs":
            what = case.params
        else:
            what = "%s %s" % (os.path.basename(BINARIES[case.kind]), " ".join(case.argv_tail))
        head = "%s  [%s; %s, %s is better; %s]" % (
            title, what, unit, "higher" if hib else "lower", _plural(rounds, "round"))
        header = ["allocator", "median", "min..max", "spread", "vs glibc", "vs best peer",
                  "RSS MiB", "RSS vs glibc"]
    rows = []
    notes = []
    for m in ms:
        med, lo, hi = m.stats()
        name = m.alloc.name
        if not m.ok:
            reason = m.errors[0] if m.errors else "no data"
            rows.append([name, "FAILED"] + [""] * (len(header) - 2))
            notes.append("  %s: all %d run(s) failed: %s" % (name, m.failed, reason))
            continue
        if m.failed:
            name += " *"
            notes.append("  * %s: %d of %d run(s) failed (%s); figures are from the rest"
                         % (m.alloc.name, m.failed, m.failed + len(m.values), m.errors[0]))
        row = [
            name,
            fmt_value(med, unit),
            "%s..%s" % (fmt_value(lo, unit), fmt_value(hi, unit)),
            fmt_pct(spread_pct(med, lo, hi)),
            fmt_ratio(ratio(med, glibc, hib)),
            fmt_ratio(ratio(med, best_val, hib)),
        ]
        if footprint:
            wall = m.median_of(m.walls)
            row.append("-" if wall is None else "%.2f" % wall)
        else:
            mrss = rss.get(m.alloc.name)
            rss_ratio = mrss / rss["glibc"] if mrss and rss.get("glibc") else None
            row += ["-" if mrss is None else "%.1f" % (mrss / 1024.0), fmt_ratio(rss_ratio)]
        rows.append(row)
    best = ("best peer: %s (%s%s)" % (best_name, fmt_value(best_val, unit),
                                      " " + unit if footprint or case.kind == "programs" else "")
            if best_name else "best peer: none measured")
    lines = [head, format_table(header, rows), best]
    if footprint:
        lines.append("vs glibc, vs best peer: their KiB / this allocator's KiB (>1: less memory)")
    lines.extend(notes)
    return "\n".join(lines)


# Short column names for the micro matrix.
SHORT_NAMES = {variants.allocator_name(v): v["short_name"] for v in HAKMEM_VARIANTS
               if v["suffix"] != ""}
# "nofastcache, hardened = hakmem-nofastcache, hakmem-hardened", for the notes.
SHORT_NAMES_NOTE = "%s = %s" % (", ".join(SHORT_NAMES.values()), ", ".join(SHORT_NAMES))


def micro_table(case, groups, allocs, rounds):
    """All micro benchmarks in one matrix: one row per benchmark, one column
    per allocator (median ns per op), then hakmem against the best peer and
    glibc as speed-ups (> 1: hakmem faster)."""
    names = [a.name for a in allocs]
    # Ratio columns for the default hakmem only (the summary has both variants).
    hak = [n for n in HAKMEM_NAMES[:1] if n in names]
    header = ["benchmark"] + [SHORT_NAMES.get(n, n) for n in names] + ["best peer"]
    for h in hak:
        header += ["%s/best" % h, "%s/glibc" % h]
    header.append("spread")
    rows = []
    marks = False
    for title, _, ms in groups:
        medians = _medians(ms)
        best_name, best_val = best_of(medians, PEER_NAMES, False)
        row = [title]
        worst = None
        for m in ms:
            med, lo, hi = m.stats()
            if not m.ok:
                row.append("FAILED")
                continue
            cell = fmt_value(med, "ns")
            if m.failed:
                cell += "*"
                marks = True
            row.append(cell)
            sp = spread_pct(med, lo, hi)
            if sp is not None and (worst is None or sp > worst):
                worst = sp
        row.append(best_name or "-")
        for h in hak:
            row.append(fmt_ratio(ratio(medians.get(h), best_val, False)))
            row.append(fmt_ratio(ratio(medians.get(h), medians.get("glibc"), False)))
        row.append(fmt_pct(worst))
        rows.append(row)
    head = ("micro  [micro_system %s; ns per op = CPU time per item, lower is better; %s]"
            % (case.params, _plural(rounds, "round")))
    notes = ["hakmem/best and hakmem/glibc are speed-ups (reference ns / hakmem ns): >1 means "
             "hakmem is faster; %s; spread = largest (max-min)/median in the row" % SHORT_NAMES_NOTE]
    if marks:
        notes.append("* some runs of that allocator failed; the median is over the rest")
    return "\n".join([head, format_table(header, rows)] + notes)


def micro_process_table(case, jobs, allocs):
    """Per allocator: the micro_system process as a whole (all benchmarks)."""
    header = ["allocator", "wall s", "CPU s", "peak RSS MiB", "RSS vs glibc", "failed runs"]
    figures = {}
    for a in allocs:
        ok = [j for j in jobs if j.case is case and j.alloc is a and not j.error and j.proc]
        bad = [j for j in jobs if j.case is case and j.alloc is a and j.error]
        med = statistics.median
        figures[a.name] = (
            med([j.proc.wall_s for j in ok]) if ok else None,
            med([j.proc.cpu_s for j in ok]) if ok else None,
            med([j.proc.peak_rss_kb for j in ok]) if ok else None,
            len(bad), len(ok) + len(bad))
    glibc_rss = figures.get("glibc", (None,) * 5)[2]
    rows = []
    for a in allocs:
        wall, cpu, rss, nbad, n = figures[a.name]
        rows.append([a.name, "-" if wall is None else "%.1f" % wall,
                     "-" if cpu is None else "%.1f" % cpu,
                     "-" if rss is None else "%.1f" % (rss / 1024.0),
                     fmt_ratio(rss / glibc_rss if rss and glibc_rss else None),
                     "%d/%d" % (nbad, n)])
    return "micro_system process (all benchmarks in one run; medians)\n" + format_table(
        header, rows)


def summary_table(groups):
    """hakmem variants against the best peer and glibc, one line per
    benchmark; the micro benchmarks as one line (their geometric mean). The
    footprint cases (peak RSS) have a geometric mean of their own, kept out
    of the speed one; so do the programs (their time or requests per second,
    and their peak RSS)."""
    hak = [n for n in HAKMEM_NAMES if any(m.alloc.name == n for _, _, ms in groups for m in ms)]
    if not hak or not groups:
        return None
    header = ["benchmark", "best peer"]
    for h in hak:
        short = SHORT_NAMES.get(h, h)
        header += ["%s/best" % short, "%s/glibc" % short]
    ncols = len(header) - 2

    def ratios(ms, hib):
        medians = _medians(ms)
        best_name, best_val = best_of(medians, PEER_NAMES, hib)
        out = []
        for h in hak:
            out.append(ratio(medians.get(h), best_val, hib))
            out.append(ratio(medians.get(h), medians.get("glibc"), hib))
        return best_name, out

    def rss_ratios(ms):
        rss = {m.alloc.name: m.median_of(m.rss) for m in ms}
        _, lowest = best_of(rss, PEER_NAMES, False)
        out = []
        for h in hak:
            out.append(ratio(rss.get(h), lowest, False))
            out.append(ratio(rss.get(h), rss.get("glibc"), False))
        return out

    rows = []
    cols = [[] for _ in range(ncols)]
    micro = [[] for _ in range(ncols)]
    footprint = [[] for _ in range(ncols)]
    programs = [[] for _ in range(ncols)]
    programs_rss = [[] for _ in range(ncols)]
    nmicro = nfootprint = nprograms = 0
    rss_seen = []
    for title, case, ms in groups:
        best_name, rs = ratios(ms, case.higher_is_better)
        if case.kind == "micro":
            nmicro += 1
            for i, r in enumerate(rs):
                micro[i].append(r)
            continue
        rows.append([title, best_name or "-"] + [fmt_ratio(r) for r in rs])
        if case.kind == "footprint":
            nfootprint += 1
        if case.kind == "programs":
            nprograms += 1
            if case not in rss_seen:  # redis's figures share one server's RSS: counted once
                rss_seen.append(case)
                for i, r in enumerate(rss_ratios(ms)):
                    programs_rss[i].append(r)
        bucket = {"footprint": footprint, "programs": programs}.get(case.kind, cols)
        for i, r in enumerate(rs):
            bucket[i].append(r)
    if nmicro:
        gms = [geomean(c) for c in micro]
        rows.append(["micro (geomean of %d)" % nmicro, "-"] + [fmt_ratio(g) for g in gms])
        for i, g in enumerate(gms):
            cols[i].append(g)
    rows.append("")
    if any(case.kind not in ("footprint", "programs") for _, case, _ in groups):
        rows.append(["geometric mean" + (" (speed)" if nfootprint or nprograms else ""), ""]
                    + [fmt_ratio(geomean(c)) for c in cols])
    if nfootprint:
        rows.append(["geometric mean (footprint)", ""] + [fmt_ratio(geomean(c)) for c in footprint])
    if nprograms:
        rows.append(["geometric mean (programs)", ""] + [fmt_ratio(geomean(c)) for c in programs])
        rows.append(["geometric mean (programs peak RSS)", "lowest"]
                    + [fmt_ratio(geomean(c)) for c in programs_rss])
    title = ("summary: hakmem against the best peer (best of %s per benchmark) and glibc; "
             ">1 means hakmem is better (more ops/s, fewer ns per op%s%s); "
             "%s" % (", ".join(PEER_NAMES), ", less peak RSS" if nfootprint or nprograms else "",
                     ", less time, more requests/s" if nprograms else "", SHORT_NAMES_NOTE))
    return title + "\n" + format_table(header, rows)


# --------------------------------------------------------------------------
# JSON.

def results_json(groups):
    """Schema 1 results. A footprint result's median is its peak RSS, so its
    peak_rss_kb is null: the dashboard would otherwise flag one change twice."""
    out = []
    for _, case, ms in groups:
        for m in ms:
            if not m.ok:
                continue
            med, lo, hi = m.stats()
            rss = None if case.kind == "footprint" else int(m.median_of(m.rss))
            out.append({
                "benchmark": m.benchmark,
                "params": case.params,
                "threads": m.threads,
                "allocator": "hakmem" if m.alloc.name in HAKMEM_NAMES else m.alloc.name,
                "variant": m.alloc.variant,
                "metric": m.metric,
                "unit": m.unit,
                "higher_is_better": case.higher_is_better,
                "median": med,
                "min": lo,
                "max": hi,
                "values": list(m.values),
                "wall_s": round(m.median_of(m.walls), 3),
                "cpu_s": round(m.median_of(m.cpus), 3),
                "peak_rss_kb": rss,
            })
    return out


def failures_json(jobs):
    out = []
    for j in jobs:
        if j.error:
            entry = {
                "benchmark": j.case.benchmark,
                "params": j.case.params,
                "threads": j.case.threads,
                "allocator": "hakmem" if j.alloc.name in HAKMEM_NAMES else j.alloc.name,
                "variant": j.alloc.variant,
                "round": j.round,
                "error": j.error,
            }
            p = j.proc
            if p is not None and not p.spawn_error:
                entry.update({
                    "exit_status": p.exit_code,
                    "signal": p.term_signal or None,
                    "timed_out": p.timed_out,
                    "wall_s": round(p.wall_s, 3),
                    "stderr_tail": stderr_tail(p.stderr),
                })
            out.append(entry)
    for j, name, err in micro_failures(jobs):
        out.append({
            "benchmark": "micro/" + name,
            "params": j.case.params,
            "threads": threads_from_name(name),
            "allocator": "hakmem" if j.alloc.name in HAKMEM_NAMES else j.alloc.name,
            "variant": j.alloc.variant,
            "round": j.round,
            "error": err,
        })
    return out


def iso_utc(t=None):
    dt = datetime.datetime.fromtimestamp(time.time() if t is None else t, datetime.timezone.utc)
    return dt.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def make_document(meta, machine, mode, rounds, build, results, failures, skipped):
    return {
        "schema": SCHEMA_VERSION,
        "commit": meta["commit"],
        "commit_subject": meta["commit_subject"],
        "commit_time": meta["commit_time"],
        "time": meta["time"],
        "branch": meta["branch"],
        "machine": machine,
        "config": {"mode": mode, "rounds": rounds, "build": build},
        "results": results,
        "failures": failures,
        "skipped": skipped,
    }


def validate_document(doc):
    """Problems of doc against dashboards/run.schema.json, as strings (empty list if none)."""
    if runschema is None:
        return ["cannot load dashboards/runschema.py from %s: %s" % (DASHBOARDS_DIR, RUNSCHEMA_IMPORT_ERROR)]
    try:
        return [str(p) for p in runschema.problems(doc)]
    except (RuntimeError, OSError, ValueError) as exc:  # jsonschema missing, schema file unreadable
        return [str(exc)]


# --------------------------------------------------------------------------
# Environment: workspace, git, machine, bazel.

def workspace_dir():
    ws = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if ws:
        return ws
    d = os.getcwd()
    while True:
        if os.path.isfile(os.path.join(d, "WORKSPACE")) or os.path.isfile(
                os.path.join(d, "WORKSPACE.bazel")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def user_path(path):
    """A path given on the command line, relative to where the user ran bazel run."""
    base = os.environ.get("BUILD_WORKING_DIRECTORY") or os.getcwd()
    return os.path.abspath(os.path.join(base, os.path.expanduser(path)))


def _git(ws, *args):
    try:
        p = subprocess.run(["git", "-C", ws or ".", *args], capture_output=True, text=True,
                           timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


# The dashboard refuses strings longer than this (its MAX_STRING).
SUBJECT_MAX = 200


def short_subject(subject):
    """A commit subject cut to what the dashboard stores, marked when cut."""
    if len(subject) <= SUBJECT_MAX:
        return subject
    return subject[:SUBJECT_MAX - 3].rstrip() + "..."


def git_meta(ws):
    commit = _git(ws, "rev-parse", "HEAD")
    if not commit:
        return {"commit": "unknown", "commit_subject": "", "commit_time": "", "branch": "",
                "dirty": False}
    branch = _git(ws, "rev-parse", "--abbrev-ref", "HEAD") or ""
    dirty = _git(ws, "status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "commit_subject": short_subject(_git(ws, "log", "-1", "--format=%s") or ""),
        "commit_time": _git(ws, "log", "-1", "--format=%cI") or "",
        "branch": "" if branch == "HEAD" else branch,
        "dirty": bool(dirty),
    }


def machine_info():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gb = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gb = int(round(int(line.split()[1]) / 1048576.0))
                    break
    except (OSError, ValueError, IndexError):
        pass
    return {
        "hostname": socket.gethostname(),
        "cpus": os.cpu_count() or 1,
        "cpu_model": model or platform.processor() or "unknown",
        "kernel": platform.release(),
        "mem_gb": mem_gb,
    }


def bazel_startup_opts(ws):
    """Startup options for the nested bazel.

    BENCH_BAZEL_STARTUP_OPTS wins. Otherwise, when this script runs from a
    bazel-bin under some output base that is not the workspace's default one,
    that output base is reused, so `bazel --output_base=X run //tools:bench`
    builds the benchmarks in X too.
    """
    env = os.environ.get("BENCH_BAZEL_STARTUP_OPTS")
    if env is not None:
        return shlex.split(env)
    here = os.path.abspath(sys.argv[0] if sys.argv and sys.argv[0] else __file__)
    m = re.match(r"^(.*?)/execroot/[^/]+/bazel-out/", here)
    if not m or not ws:
        return []
    output_base = m.group(1)
    user = os.environ.get("USER") or ""
    try:
        import pwd
        user = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        pass
    default = os.path.join(os.path.expanduser("~"), ".cache", "bazel", "_bazel_" + user,
                           hashlib.md5(os.path.realpath(ws).encode()).hexdigest())
    if os.path.realpath(output_base) == os.path.realpath(default):
        return []
    return ["--output_base=" + output_base]


def build_kind_of(bin_dir):
    real = os.path.realpath(bin_dir)
    if re.search(r"-opt(/|$)", real):
        return "release"
    if re.search(r"-dbg(/|$)", real):
        return "debug"
    if re.search(r"-fastbuild(/|$)", real):
        return "fastbuild"
    return "unknown"


def eprint(*a):
    print(*a, file=sys.stderr, flush=True)


def bazel_build(ws, targets, dry_run):
    """Builds targets with --config=release; returns bazel-bin or None."""
    bazel = os.environ.get("BAZEL", "bazel")
    startup = bazel_startup_opts(ws)
    env = clean_env(None)
    for k in ("BUILD_WORKSPACE_DIRECTORY", "BUILD_WORKING_DIRECTORY"):
        env.pop(k, None)
    build = [bazel] + startup + ["build", "--config=release"] + targets
    info = [bazel] + startup + ["info", "--config=release", "bazel-bin"]
    eprint("building (release) in %s:\n  %s" % (ws, " ".join(shlex.quote(x) for x in build)))
    if dry_run:
        eprint("  (dry run: not building)")
        return None
    try:
        p = subprocess.run(build, cwd=ws, env=env, stdout=sys.stderr, stderr=sys.stderr)
    except OSError as exc:
        eprint("error: cannot run %s: %s" % (bazel, exc))
        return None
    if p.returncode != 0:
        eprint("error: bazel build failed (exit status %d)" % p.returncode)
        return None
    p = subprocess.run(info, cwd=ws, env=env, capture_output=True, text=True)
    if p.returncode != 0 or not p.stdout.strip():
        eprint("error: bazel info bazel-bin failed:\n" + p.stderr)
        return None
    return p.stdout.strip().splitlines()[-1]


# --------------------------------------------------------------------------
# Progress.

class Progress:
    def __init__(self, jobs, stream=None):
        self.jobs = jobs
        self.stream = stream if stream is not None else sys.stderr
        self.est = {}
        self.seen = {}
        for j in jobs:
            self.est.setdefault(j.case.id, j.case.nominal_s + 0.3)

    def remaining_s(self, done_index):
        return sum(self.est[j.case.id] for j in self.jobs[done_index:])

    def record(self, job):
        n = self.seen.get(job.case.id, 0)
        w = job.proc.wall_s if job.proc is not None else 0.0
        self.est[job.case.id] = (self.est[job.case.id] * n + w) / (n + 1) if n else w
        self.seen[job.case.id] = n + 1

    def line(self, job, rounds):
        width = len(str(len(self.jobs)))
        return "[%*d/%d] %s round %d/%d %s ..." % (width, job.index, len(self.jobs),
                                                  job.case.label, job.round, rounds,
                                                  job.alloc.name)

    def outcome(self, job):
        if job.error:
            return "FAILED: %s" % job.error
        if job.case.kind == "micro":
            s = "%d benchmarks in %.1fs" % (len(job.micro), job.proc.wall_s)
            if job.micro_errors:
                s += ", %d with errors" % len(job.micro_errors)
            return s
        if job.case.kind == "footprint":
            return "%s KiB peak RSS" % fmt_value(job.value, "KiB")
        if job.case.kind == "programs":
            rss = "%.1f MiB peak RSS" % (job.proc.peak_rss_kb / 1024.0)
            if job.case.program == "redis":
                return "%s req/s (%s), %s" % (
                    fmt_si(job.figures.get("SET")), ", ".join(
                        "%s %s" % (k, fmt_si(v)) for k, v in job.figures.items() if k != "SET"),
                    rss)
            return "%.2f s, %s" % (job.figures[""], rss)
        return "%s ops/s" % fmt_si(job.value)


# --------------------------------------------------------------------------
# Main.

def resolve_allocators(names, bin_dir, peer_dir, assume_built=False):
    """-> (allocators, skipped entries, fatal errors).

    A missing peer library skips that peer; a missing hakmem library is an
    error (unless assume_built: a dry run before the build).
    """
    allocs, skipped, errors = [], [], []
    for name, variant, kind, lib in ALLOCATORS:
        if name not in names:
            continue
        if kind == "none":
            allocs.append(Allocator(name, variant, None))
            continue
        path = os.path.join(bin_dir if kind == "hakmem" else peer_dir, lib)
        if os.path.isfile(path):
            allocs.append(Allocator(name, variant, os.path.abspath(path)))
        elif assume_built and kind == "hakmem":
            allocs.append(Allocator(name, variant, path))
        elif kind == "hakmem":
            errors.append("%s: preload library not found: %s" % (name, path))
        else:
            skipped.append({"allocator": name, "reason": "%s not found" % path})
    return allocs, skipped, errors


def find_binary(bin_dir, kind):
    """The benchmark binary of a kind (a key of BINARIES) in bin_dir, or None."""
    for rel in (BINARIES[kind], os.path.basename(BINARIES[kind])):
        p = os.path.join(bin_dir, rel)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return os.path.abspath(p)
    return None


def run_job(job, binary, rounds, inputs=None, program_inputs=None):
    """Runs one job and evaluates it. binary: the case's benchmark binary
    (None for footprint and programs); inputs: the FootprintInputs of a
    footprint job; program_inputs: the bench_programs.ProgramInputs of a
    programs job."""
    if job.case.kind == "programs":
        if program_inputs is None:
            job.error = "no inputs prepared"
            return
        proc, figures, problem = bench_programs.run(
            sys.modules[__name__], job.case.program, job.alloc.preload, program_inputs,
            job.case.timeout_s, job.alloc.env)
        evaluate(job, proc, programs=(figures, problem))
        return
    if job.case.kind == "footprint":
        program = job.case.program
        if inputs is None or program in inputs.errors:
            job.error = (inputs.errors[program] if inputs is not None
                         else "no inputs prepared")
            return
        env = footprint_env(job.alloc.preload, program, job.alloc.env)
        evaluate(job, run_process(inputs.argv(job.case), env, job.case.timeout_s), inputs=inputs)
        return
    env = clean_env(job.alloc.preload, job.alloc.env)
    argv = [binary] + list(job.case.argv_tail)
    if job.case.kind == "micro":
        fd, out_path = tempfile.mkstemp(prefix="bench-micro-", suffix=".json")
        os.close(fd)
        try:
            argv += ["--benchmark_out=" + out_path, "--benchmark_out_format=json"]
            proc = run_process(argv, env, job.case.timeout_s)
            try:
                with open(out_path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
            except OSError:
                text = ""
        finally:
            try:
                os.unlink(out_path)
            except OSError:
                pass
        evaluate(job, proc, text)
    else:
        evaluate(job, run_process(argv, env, job.case.timeout_s))


def read_token(path):
    """The push token from path, else $HAKMEM_DASHBOARD_TOKEN, else None."""
    if path:
        with open(user_path(path), encoding="utf-8") as f:
            token = f.read().strip()
        if not token:
            raise ValueError("the token file %s is empty" % path)
        return token
    return os.environ.get(TOKEN_ENV, "").strip() or None


def post_run(url, doc, token=None):
    """One POST of doc to url/api/runs: (HTTP status or None when there was no answer, reason, body)."""
    target = url.rstrip("/") + "/api/runs"
    data = json.dumps(doc).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(target, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.reason, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.reason, exc.read().decode("utf-8", "replace").strip()
    except (urllib.error.URLError, OSError) as exc:
        return None, str(getattr(exc, "reason", exc)), ""


def stored_alerts(url, run_id):
    """The dashboard's alert report of a stored run (GET /api/runs/<id>/alerts), or None."""
    target = "%s/api/runs/%d/alerts" % (url.rstrip("/"), run_id)
    try:
        with urllib.request.urlopen(target, timeout=60) as resp:
            report = json.loads(resp.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def backoff_s(attempt):
    """Seconds to wait after failed attempt number attempt (1, 2, ...): 2, 4, 8, ... at most the cap."""
    return min(PUSH_BACKOFF_MAX_S, 2 ** attempt)


def push(url, doc, token=None, retries=0, sleep=None):
    """POST doc to url/api/runs; returns (ok, message, decoded reply or None).

    No answer, 429 and 5xx are tried again up to retries times, with backoff_s
    between tries. A 409 means the run is stored already (an earlier try got
    through, or the file was pushed before): that is success, and the reply is
    the stored run's alert report.
    """
    target = url.rstrip("/") + "/api/runs"
    tries = retries + 1
    for attempt in range(1, tries + 1):
        code, reason, body = post_run(url, doc, token)
        if code is not None and 200 <= code < 300:
            break
        if code == 409:
            try:
                run_id = int(json.loads(body)["id"])
            except (ValueError, KeyError, TypeError):
                return False, "push to %s failed: HTTP 409 without a run id: %s" % (target, body[:2000]), None
            report = stored_alerts(url, run_id)
            message = ("push to %s: this run is already stored as run %d (an earlier push got through); "
                       "nothing changed" % (target, run_id))
            if report is None:
                return True, message + "; its alerts could not be read", None
            return True, message, dict(report, id=run_id)
        what = "HTTP %d %s: %s" % (code, reason, body[:2000]) if code is not None else reason
        tried = " (tried %d times)" % attempt if attempt > 1 else ""
        if code is not None and code not in RETRY_STATUSES:
            hint = ""
            if code in (401, 403):
                hint = " (give the token with --token-file or $%s)" % TOKEN_ENV
            return False, "push to %s failed: %s%s%s" % (target, what, hint, tried), None
        if attempt == tries:
            return False, "push to %s failed: %s%s" % (target, what, tried), None
        wait = backoff_s(attempt)
        eprint("push to %s: try %d of %d failed: %s; trying again in %d s" % (target, attempt, tries, what, wait))
        (sleep or time.sleep)(wait)
    try:
        reply = json.loads(body)
    except ValueError:
        reply = None
    shown = body.strip()
    if isinstance(reply, dict):  # the alerts are printed on their own below
        shown = json.dumps({k: v for k, v in reply.items() if k not in ("alerts", "improvements")})
    return True, "pushed to %s: HTTP %d: %s" % (target, code, shown[:2000]), reply


def push_and_report(args, doc, token):
    """Pushes doc as the flags say and prints the alerts; the exit status it calls for (0, 1 or 3)."""
    ok, msg, reply = push(args.push, doc, token, args.push_retries)
    if not ok:
        eprint("error: " + msg)
        return 1
    eprint(msg)
    for line in format_alerts(reply):
        print(line)
    alerts = reply.get("alerts") if isinstance(reply, dict) else None
    if args.fail_on_regression and alerts:
        eprint("exit status %d: --fail-on-regression, and the dashboard reported %d regression alert(s)"
               % (REGRESSION_STATUS, len(alerts)))
        return REGRESSION_STATUS
    return 0


def push_saved_file(args, token):
    """--push-file: check a saved run and push it; the exit status."""
    path = user_path(args.push_file)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        eprint("error: cannot read %s: %s" % (path, exc))
        return 1
    try:
        doc = runschema.loads(text) if runschema is not None else json.loads(text)
    except (ValueError, RecursionError) as exc:
        eprint("error: %s is not valid JSON: %s" % (path, exc))
        return 1
    if not isinstance(doc, dict):
        eprint("error: %s holds a JSON %s; a saved run is one object" % (path, type(doc).__name__))
        return 1
    problems = validate_document(doc)
    if problems:
        eprint("error: %s does not match dashboards/run.schema.json; nothing pushed:\n  %s"
               % (path, "\n  ".join(problems[:20])))
        return 1
    eprint("pushing %s (commit %s, %d results)" % (path, str(doc["commit"])[:12], len(doc["results"])))
    return push_and_report(args, doc, token)


FIGURE_NAMES = {"median": None, "peak_rss_kb": "peak RSS", "vs_best_peer": "ratio to best peer"}


def format_alerts(reply):
    """Lines about the dashboard's regression alerts in a push reply."""
    if not isinstance(reply, dict) or "alerts" not in reply:
        return []
    prev = reply.get("previous_run")
    if not prev:
        return ["alerts: no earlier run of this configuration on this machine to compare with"]
    against = "run %s (commit %s)" % (prev.get("id"), str(prev.get("commit", ""))[:12])
    alerts = reply.get("alerts") or []
    if not alerts:
        return ["alerts: nothing moved beyond the noise against %s" % against]
    lines = ["REGRESSION ALERTS (%d) against %s, same machine and configuration:"
             % (len(alerts), against)]
    for a in alerts:
        figure = FIGURE_NAMES.get(a.get("figure")) or a.get("metric", "")
        if a.get("figure") == "vs_best_peer":
            shown = "%s -> %s" % (fmt_ratio(a["previous"]), fmt_ratio(a["current"]))
        elif a.get("figure") == "peak_rss_kb":
            shown = "%d kB -> %d kB" % (a["previous"], a["current"])
        else:
            shown = "%s -> %s" % (fmt_si(a["previous"]), fmt_si(a["current"]))
        lines.append("  %s t=%s %s %s: %s (%+.1f%%, noise %.1f%%)" % (
            a.get("benchmark"), a.get("threads"), a.get("label", "hakmem"), figure, shown,
            100.0 * a["change"], 100.0 * a["threshold"]))
    return lines


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.time()
    token = None
    if args.push:
        try:  # before the benchmarks: a bad token file should not cost a whole run
            token = read_token(args.token_file)
        except (OSError, ValueError) as exc:
            eprint("error: cannot read the push token: %s" % exc)
            return 1
    if args.push_file:
        return push_saved_file(args, token)
    ws = workspace_dir()
    under_bazel_run = bool(os.environ.get("BUILD_WORKSPACE_DIRECTORY"))
    cases = make_cases(args.mode, args.bench)
    if any(c.kind == "footprint" for c in cases) and not rss_helper_available():
        # wait4's figure would be this runner's RSS, not the programs'.
        eprint("warning: leaving out the footprint cases: their peak RSS needs %s "
               "(Debian package 'time')" % TIME_BIN)
        cases = [c for c in cases if c.kind != "footprint"]
        if not cases:
            eprint("error: no benchmark left to run")
            return 1
    # The kinds that run a benchmark binary (footprint runs Debian's programs).
    kinds = [k for k in BINARIES if any(c.kind == k for c in cases)]

    # 1. Binaries: build them (release) or take them from --bin-dir.
    if args.bin_dir:
        bin_dir = user_path(args.bin_dir)
        if not os.path.isdir(bin_dir):
            eprint("error: --bin-dir %s is not a directory" % bin_dir)
            return 1
        build = build_kind_of(bin_dir)
        if build != "release":
            eprint("warning: %s does not look like a release (-c opt) bazel-bin" % bin_dir)
    else:
        if not ws:
            eprint("error: no workspace: run with `bazel run //tools:bench` or pass --bin-dir")
            return 1
        targets = [BINARY_TARGETS[k] for k in kinds]
        targets += sorted({LIBRARY_TARGETS[n] for n in LIBRARY_TARGETS if n in args.alloc})
        build = "release"
        if targets:
            bin_dir = bazel_build(ws, targets, args.dry_run)
            if bin_dir is None and not args.dry_run:
                return 1
        else:  # footprint of peers only: nothing of ours runs
            eprint("nothing to build")
            bin_dir = None
        if bin_dir is None:
            bin_dir = "<bazel-bin>"
    binaries = {}
    missing = []
    for k in kinds:
        binaries[k] = find_binary(bin_dir, k)
        if binaries[k] is None:
            missing.append("%s binary not found in %s (%s)" % (k, bin_dir, BINARIES[k]))
    allocs, skipped, errors = resolve_allocators(args.alloc, bin_dir, args.peer_lib_dir,
                                                 assume_built=args.dry_run)
    if missing and args.dry_run:
        missing = []
    if missing or errors:
        for e in missing + errors:
            eprint("error: " + e)
        return 1
    for s in skipped:
        eprint("warning: skipping %s: %s" % (s["allocator"], s["reason"]))
    if not allocs:
        eprint("error: no allocator left to run")
        return 1

    meta = git_meta(ws)
    meta["time"] = iso_utc(started)
    machine = machine_info()
    jobs = plan_jobs(cases, allocs, args.rounds)
    progress = Progress(jobs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0

    eprint("hakmem bench: %s mode, %d round%s, %d runs, about %s; build %s; binaries from %s"
           % (args.mode, args.rounds, "" if args.rounds == 1 else "s", len(jobs),
              fmt_duration(progress.remaining_s(0)), build, bin_dir))
    eprint("allocators: %s" % ", ".join(
        "%s%s" % (a.name, " (LD_PRELOAD=%s)" % a.preload if a.preload else " (no preload)")
        for a in allocs))
    if meta["dirty"]:
        eprint("warning: the work tree has uncommitted changes; results are recorded "
               "against commit %s" % meta["commit"][:12])
    if load > 0.5 * machine["cpus"]:
        eprint("warning: load average is %.1f on %d CPUs; figures will be noisy"
               % (load, machine["cpus"]))
    if not rss_helper_available():
        eprint("warning: %s not found (Debian package 'time'): peak RSS comes from wait4 and "
               "is never below this runner's own RSS (~10-30 MiB)" % TIME_BIN)
    footprint_cases = [c for c in cases if c.kind == "footprint"]
    program_cases = [c for c in cases if c.kind == "programs"]
    hak_env = sorted(k for k in os.environ if k.startswith("HAKMEM_"))
    if hak_env:
        eprint("note: passing %s to every run" % ", ".join(hak_env))
    if args.dry_run:
        if footprint_cases:
            eprint("footprint inputs: made in a temporary directory (%s below) with glibc"
                   % FOOTPRINT_WORK)
        if program_cases:
            eprint("programs inputs: made in a temporary directory (%s below) with glibc"
                   % bench_programs.WORK)
        for j in jobs:
            if j.case.kind == "programs" and j.case.argv_tail is None:
                argv = ["%s on a free loopback port, then %s: %s" % (
                    bench_programs.REDIS_SERVER_BIN, bench_programs.REDIS_BENCHMARK_BIN,
                    j.case.params)]
            elif j.case.kind in ("footprint", "programs"):
                argv = [shlex.quote(a) for a in j.case.argv_tail]
            else:
                argv = [binaries.get(j.case.kind)
                        or os.path.join(bin_dir, BINARIES[j.case.kind])] + j.case.argv_tail
            eprint("[%d/%d] round %d %s: %s%s" % (
                j.index, len(jobs), j.round, j.alloc.name,
                "LD_PRELOAD=%s " % j.alloc.preload if j.alloc.preload else "",
                " ".join(argv)))
        return 0

    # 2. Runs. SIGTERM is handled like Ctrl-C: the running benchmark is killed.
    def on_sigterm(signum, frame):
        raise KeyboardInterrupt()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    inputs = None
    program_inputs = None
    try:
        if footprint_cases:
            t0 = time.monotonic()
            inputs = FootprintInputs([c.program for c in footprint_cases])
            eprint("footprint inputs made in %s with glibc (%.1fs, not timed)%s" % (
                inputs.dir, time.monotonic() - t0,
                "".join("; %s: %s" % kv for kv in sorted(inputs.errors.items()))))
        if program_cases:
            t0 = time.monotonic()
            program_inputs = bench_programs.ProgramInputs(
                sys.modules[__name__], [c.program for c in program_cases], args.mode)
            eprint("programs inputs made in %s with glibc (%.1fs, not timed)%s" % (
                program_inputs.dir, time.monotonic() - t0,
                "".join("; %s: %s" % kv for kv in sorted(program_inputs.errors.items()))))
        for i, job in enumerate(jobs):
            eprint_line = progress.line(job, args.rounds)
            print(eprint_line, end="", file=sys.stderr, flush=True)
            run_job(job, binaries.get(job.case.kind), args.rounds, inputs, program_inputs)
            progress.record(job)
            eta = progress.remaining_s(i + 1)
            eprint(" %s%s" % (progress.outcome(job),
                              "  (ETA %s)" % fmt_duration(eta) if i + 1 < len(jobs) else ""))
            if job.error and job.proc is not None and job.proc.stderr.strip():
                for l in stderr_tail(job.proc.stderr).splitlines():
                    eprint("      | " + l)
    except KeyboardInterrupt:
        eprint("\ninterrupted: nothing written")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if inputs is not None:
            inputs.close()
        if program_inputs is not None:
            program_inputs.close()
    elapsed = time.time() - started

    # 3. Tables.
    groups, failed_jobs = aggregate(jobs, cases, allocs)
    print("hakmem bench %s: %s mode, %d round%s, build %s, commit %s%s (%s)" % (
        meta["time"], args.mode, args.rounds, "" if args.rounds == 1 else "s", build,
        meta["commit"][:12], " +uncommitted changes" if meta["dirty"] else "",
        meta["commit_subject"]))
    print("machine: %s, %d CPUs (%s), %s GiB, kernel %s; took %s" % (
        machine["hostname"], machine["cpus"], machine["cpu_model"], machine["mem_gb"],
        machine["kernel"], fmt_duration(elapsed)))
    if skipped:
        print("skipped: %s" % "; ".join("%s (%s)" % (s["allocator"], s["reason"])
                                        for s in skipped))
    for case in cases:
        case_groups = [g for g in groups if g[1] is case]
        if not case_groups:
            continue
        print()
        if case.kind == "micro":
            print(micro_table(case, case_groups, allocs, args.rounds))
            print()
            print(micro_process_table(case, jobs, allocs))
        else:
            for n, (title, _, ms) in enumerate(case_groups):
                if n:
                    print()
                print(group_table(title, case, ms, args.rounds))
    st = summary_table(groups)
    if st:
        print()
        print(st)
    failures = failures_json(jobs)
    if failures:
        print()
        print("FAILURES (%d):" % len(failures))
        for f in failures:
            print("  %s t=%s round %s %s%s: %s%s" % (
                f["benchmark"], f["threads"], f["round"], f["allocator"],
                "-" + f["variant"] if f["variant"] in SHORT_NAMES.values() else "",
                f["error"], "" if f["allocator"] == "hakmem" or args.strict else "  (peer: not fatal)"))
    sys.stdout.flush()

    # 4. JSON and push.
    doc = make_document(meta, machine, args.mode, args.rounds, build, results_json(groups),
                        failures, skipped)
    problems = validate_document(doc)
    if problems:
        eprint("error: the run does not match dashboards/run.schema.json; nothing written:\n  "
               + "\n  ".join(problems[:20]))
        if meta["commit"] == "unknown":
            eprint("(no git commit: run the benchmarks from a git checkout of hakmem)")
        return 1
    # A peer's failure is the peer's problem (scudo refusing a request, say): reported, not fatal.
    fatal = failures if args.strict else [f for f in failures if f["allocator"] == "hakmem"]
    status = 1 if fatal else 0
    out = None
    if args.json:
        out = user_path(args.json)
    elif under_bazel_run and ws:
        out = os.path.join(ws, "bench-results", "run-%s.json" % time.strftime(
            "%Y%m%d-%H%M%S", time.gmtime(started)))
    if out:
        try:
            os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
            with open(out + ".tmp", "w") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
            os.replace(out + ".tmp", out)
            eprint("wrote %s" % out)
        except OSError as exc:
            eprint("error: cannot write %s: %s" % (out, exc))
            status = 1
    if args.push:
        pushed = push_and_report(args, doc, token)
        status = status or pushed  # a failed run (1) says more than its alerts (3)
    if failures:
        peers_only = len([f for f in failures if f["allocator"] != "hakmem"])
        eprint("%d run(s) failed; see FAILURES above%s" % (
            len(failures), "" if not peers_only else
            " (%d of a peer allocator: %s)" % (peers_only, "fatal with --strict" if args.strict
                                                else "not fatal without --strict")))
    return status


if __name__ == "__main__":
    sys.exit(main())
