#!/usr/bin/env python3
"""The misuse matrix: every misuse case of misuse_matrix under every allocator.

Runs //hakmem/tests/reliability:misuse_matrix once per case and allocator
(hakmem's preload libraries, glibc, and the peers mimalloc, jemalloc,
tcmalloc and scudo, each injected with LD_PRELOAD) and classifies how each run
ended:

    reported            killed by SIGABRT, or died or exited non-zero after an
                        allocator's error line on stderr
    crashed             killed by another signal (SIGSEGV, SIGBUS, ...) with
                        no error line
    silent              exited 0: nothing noticed, no damage seen
    silent (warned)     exited 0 after printing an error line
    silent (duplicate)  a block was handed out twice or over held memory
                        (misuse_matrix printed DUPLICATE/OVERLAP, exit 3)
    hung                still running at the timeout
    error               the run says nothing about the allocator: a failed
                        precondition (exit 77), a failed preload, another exit

Prints the matrix as Markdown (rows = cases, columns = allocators), or JSON.

    bazel run --config=release //tools:misuse_matrix -- [--json] [--details]
    tools/misuse_matrix.py --bin-dir bazel-bin [--alloc NAMES] [--cases NAMES]

With --check-hakmem the exit status says whether hakmem's columns are what
hakmem promises (//hakmem/tests/reliability:misuse_matrix_test): every case
reported, except that the release variants (hakmem, hakmem-nofastcache) may
let the two hardened-only cases through as long as they neither crash nor
hand a block out twice. Peers are never judged.

Python 3 standard library only.
"""

import argparse
import concurrent.futures
import glob
import json
import os
import re
import resource
import signal
import subprocess
import sys

# hakmem's variants come from hakmem/variants.bzl, through tools/variants.py.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import variants  # noqa: E402

HAKMEM_VARIANTS = variants.load()

PEER_LIB_DIR = "/usr/lib/x86_64-linux-gnu"
# libclang-rt-14-dev (tools/setup.sh); the glob is for another LLVM version.
SCUDO_LIB = "/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.scudo_standalone-x86_64.so"
SCUDO_GLOB = "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.scudo_standalone-x86_64.so"

# name, kind, library. kind "hakmem": relative to the bin dir; "peer":
# relative to the peer library directory (an absolute path stays as it is);
# "none": no LD_PRELOAD.
ALLOCATORS = [
    (variants.allocator_name(v), "hakmem", variants.library(v)) for v in HAKMEM_VARIANTS
] + [
    # The default variant with every eligible allocation guarded: what the
    # guarded pool catches that the slab checks cannot.
    ("hakmem-guarded", "hakmem", variants.library(HAKMEM_VARIANTS[0])),
] + [
    ("glibc", "none", None),
    ("mimalloc", "peer", "libmimalloc.so.2"),
    ("jemalloc", "peer", "libjemalloc.so.2"),
    ("tcmalloc", "peer", "libtcmalloc_minimal.so.4"),
    ("scudo", "peer", SCUDO_LIB),
]
ALLOCATOR_NAMES = [a[0] for a in ALLOCATORS]
# Options a column runs with (every other HAKMEM_* variable is dropped).
ALLOCATOR_ENV = {"hakmem-guarded": {"HAKMEM_GUARD_SAMPLE": "1"}}
HAKMEM_NAMES = [a[0] for a in ALLOCATORS if a[1] == "hakmem"]
# The variants without hardening: they need not catch the hardened-only cases.
RELEASE_NAMES = tuple(variants.allocator_name(v) for v in HAKMEM_VARIANTS
                      if "HAKMEM_HARDENED=1" not in v["defines"])
# Cases only the hardened variant is expected to catch (and the release
# build with every allocation guarded, HAKMEM_GUARD_SAMPLE=1).
HARDENED_ONLY = ("uaf-write-middle", "overflow-neighbour")
# What hakmem does not catch yet, though it should: printed with every run;
# an entry goes once it is caught. None today.
KNOWN_GAPS = set()

PROGRAM = "hakmem/tests/reliability/misuse_matrix"

REPORTED = "reported"
CRASHED = "crashed"
SILENT = "silent"
SILENT_WARNED = "silent (warned)"
SILENT_DUPLICATE = "silent (duplicate)"
HUNG = "hung"
ERROR = "error"
VERDICTS = (REPORTED, CRASHED, SILENT, SILENT_WARNED, SILENT_DUPLICATE, HUNG, ERROR)

# An allocator's error line on stderr, one alternative per allocator.
REPORT_RE = re.compile(
    r"^hakmem: (?!crash report)"  # hakmem (its crash report is not a misuse report)
    r"|(free|realloc|malloc|calloc|munmap_chunk|malloc_consolidate|_int_free|_int_malloc)"
    r"\(\): "  # glibc
    r"|double free|corrupted|Fatal glibc error"  # glibc
    r"|Scudo ERROR"  # scudo
    r"|<jemalloc>"  # jemalloc
    r"|Attempt to (free|realloc)|tcmalloc|Check failed"  # gperftools tcmalloc
    r"|mimalloc: (error|warning)"  # mimalloc
)
VICTIM_RE = re.compile(r"^victim (0x[0-9a-f]+)$", re.M)
DAMAGE_RE = re.compile(r"^(DUPLICATE|OVERLAP) ", re.M)
PRELOAD_FAILED_RE = re.compile(r"ld\.so: object .* from LD_PRELOAD cannot be preloaded")
EXIT_DAMAGE = 3
EXIT_PRECONDITION = 77
# Options that would change an allocator's behaviour from its default.
DROPPED_ENV = ("LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_CHECK_", "MALLOC_PERTURB_", "MALLOC_CONF",
               "SCUDO_OPTIONS", "TCMALLOC_", "MIMALLOC_", "HAKMEM_")


def _signal_name(sig):
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "signal %d" % sig


def classify(returncode, output, timed_out=False):
    """-> (verdict, detail) for one run: its exit status (negative: killed by
    that signal, as subprocess gives it) and its stderr."""
    if timed_out:
        return HUNG, "still running at the timeout"
    if PRELOAD_FAILED_RE.search(output):
        return ERROR, "the preload library was not loaded"
    lines = output.splitlines()
    reports = [ln.strip() for ln in lines if REPORT_RE.search(ln)]
    first = reports[0] if reports else None
    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGABRT:
            return REPORTED, "SIGABRT: " + (first or "no message")
        if first:
            return REPORTED, "%s after: %s" % (_signal_name(sig), first)
        return CRASHED, _signal_name(sig)
    if returncode == EXIT_DAMAGE and DAMAGE_RE.search(output):
        return SILENT_DUPLICATE, next(ln for ln in lines if DAMAGE_RE.match(ln)).strip()
    if returncode == EXIT_PRECONDITION:
        failed = [ln for ln in lines if ln.startswith("precondition failed")]
        return ERROR, failed[0] if failed else "precondition failed"
    if returncode == 0:
        return (SILENT_WARNED, first) if first else (SILENT, "exit 0")
    if first:
        return REPORTED, "exit %d: %s" % (returncode, first)
    return ERROR, "exit %d, no error line" % returncode


def expectation_met(allocator, case, verdict):
    """Whether a hakmem variant's verdict is what hakmem promises."""
    if verdict == REPORTED:
        return True
    if (allocator in RELEASE_NAMES and case in HARDENED_ONLY) or (allocator, case) in KNOWN_GAPS:
        # Not caught is allowed; damage or a crash is not, and neither is a
        # run that says nothing (hung, error).
        return verdict in (SILENT, SILENT_WARNED)
    return False


def expectation_text(allocator, case):
    if (allocator, case) in KNOWN_GAPS:
        return "reported (known gap: silent or silent (warned) tolerated)"
    if allocator in RELEASE_NAMES and case in HARDENED_ONLY:
        return "reported, silent or silent (warned)"
    return "reported"


class Allocator:
    def __init__(self, name, kind, preload):
        self.name = name
        self.kind = kind
        self.preload = preload
        self.env = ALLOCATOR_ENV.get(name, {})


def find_scudo(path=SCUDO_LIB):
    if os.path.isfile(path):
        return path
    found = sorted(glob.glob(SCUDO_GLOB))
    return found[-1] if found else path


def resolve_allocators(names, bin_dir, peer_dir, scudo=None):
    """-> (allocators, skipped {name: reason}, errors). A missing peer is
    skipped; a missing hakmem library is an error."""
    allocs, skipped, errors = [], {}, []
    for name, kind, lib in ALLOCATORS:
        if name not in names:
            continue
        if kind == "none":
            allocs.append(Allocator(name, kind, None))
            continue
        if name == "scudo":
            path = scudo or find_scudo()
        else:
            path = os.path.join(bin_dir if kind == "hakmem" else peer_dir, lib)
        if os.path.isfile(path):
            allocs.append(Allocator(name, kind, os.path.abspath(path)))
        elif kind == "hakmem":
            errors.append("%s: preload library not found: %s" % (name, path))
        else:
            skipped[name] = "%s not found" % path
    return allocs, skipped, errors


def child_env(preload, extra=None):
    env = {k: v for k, v in os.environ.items()
           if not any(k == d or (d.endswith("_") and k.startswith(d)) for d in DROPPED_ENV)}
    # glibc writes its fatal messages to stderr rather than to the terminal.
    env["LIBC_FATAL_STDERR_"] = "1"
    if preload:
        env["LD_PRELOAD"] = preload
    env.update(extra or {})
    return env


def _no_core():
    # Hundreds of deliberate aborts: no core files.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_case(program, case, alloc, timeout):
    """Runs one case under one allocator -> result dict."""
    timed_out = False
    try:
        proc = subprocess.run([program, case], env=child_env(alloc.preload, alloc.env),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout, preexec_fn=_no_core)
        output = proc.stdout.decode("utf-8", "replace")
        returncode = proc.returncode
    except subprocess.TimeoutExpired as e:
        timed_out = True
        output = (e.output or b"").decode("utf-8", "replace")
        returncode = None
    verdict, detail = classify(returncode if returncode is not None else 0, output, timed_out)
    victim = VICTIM_RE.search(output)
    reports = [ln for ln in output.splitlines() if REPORT_RE.search(ln)]
    return {
        "case": case,
        "allocator": alloc.name,
        "verdict": verdict,
        "detail": detail,
        "returncode": returncode,
        "victim": victim.group(1) if victim else None,
        # Whether the first error line names the misused address.
        "names_victim": bool(victim and reports and victim.group(1) in reports[0]),
        "output": output[-2000:],
    }


def list_cases(program):
    out = subprocess.run([program, "--describe"], stdout=subprocess.PIPE, check=True,
                         env=child_env(None)).stdout.decode()
    cases = []
    for line in out.splitlines():
        name, _, what = line.partition("\t")
        cases.append((name, what))
    return cases


def run_matrix(program, cases, allocs, timeout, jobs):
    """-> results in case-major order."""
    work = [(c, a) for c in cases for a in allocs]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run_case, program, c, a, timeout) for c, a in work]
        return [f.result() for f in futures]


def markdown_table(cases, names, results, skipped=None):
    """Rows = cases, columns = allocators; cells are verdicts."""
    cell = {(r["case"], r["allocator"]): r["verdict"] for r in results}
    skipped = skipped or {}
    header = ["case"] + list(names)
    rows = [[c] + [cell.get((c, n), "n/a" if n in skipped else "") for n in names]
            for c in cases]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]

    def line(vals):
        return "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"

    out = [line(header), "| " + " | ".join("-" * w for w in widths) + " |"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def details_text(results, names=None):
    """One line per run: the verdict's grounds (signal, exit, first error line)."""
    out = []
    for r in results:
        if names is not None and r["allocator"] not in names:
            continue
        out.append("%s / %s: %s -- %s%s" % (
            r["case"], r["allocator"], r["verdict"], r["detail"],
            " (names the victim)" if r["names_victim"] else ""))
    return "\n".join(out)


def hakmem_failures(results):
    """The hakmem cells that break hakmem's promise, as text lines."""
    out = []
    for r in results:
        if r["allocator"] not in HAKMEM_NAMES:
            continue
        if not expectation_met(r["allocator"], r["case"], r["verdict"]):
            out.append("%s / %s: %s (expected %s) -- %s" % (
                r["case"], r["allocator"], r["verdict"],
                expectation_text(r["allocator"], r["case"]), r["detail"]))
    return out


def parse_list(text, known, what):
    tokens = [t.strip() for t in text.split(",") if t.strip()]
    if not tokens:
        raise ValueError("empty %s list" % what)
    chosen = set()
    for tok in tokens:
        if tok == "all":
            chosen.update(known)
        elif tok == "hakmem-all":
            chosen.update(n for n in known if n in HAKMEM_NAMES)
        elif tok in known:
            chosen.add(tok)
        else:
            raise ValueError("unknown %s %r (choose from: all, %s)" % (what, tok, ", ".join(known)))
    return [k for k in known if k in chosen]


def default_bin_dir():
    """The runfiles root under `bazel run`/`bazel test` (the script sits in
    its tools/), else the workspace's bazel-bin."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(os.path.join(here, PROGRAM)):
        return here
    ws = os.environ.get("BUILD_WORKSPACE_DIRECTORY", here)
    return os.path.join(ws, "bazel-bin")


def build_parser():
    p = argparse.ArgumentParser(
        prog="misuse_matrix",
        description="Run every misuse case under hakmem and its peers; print the matrix.",
        epilog="Allocators: all, hakmem-all, %s." % ", ".join(ALLOCATOR_NAMES))
    p.add_argument("--bin-dir", help="where hakmem/libhakmem*.so and %s are (a bazel-bin or "
                   "runfiles root; default: found next to this script, else bazel-bin)" % PROGRAM)
    p.add_argument("--program", help="the misuse_matrix binary (default: under --bin-dir)")
    p.add_argument("--peer-lib-dir", default=PEER_LIB_DIR, metavar="DIR",
                   help="the peers' .so files (default %(default)s)")
    p.add_argument("--scudo", metavar="PATH", help="scudo's .so (default %s)" % SCUDO_LIB)
    p.add_argument("--alloc", default="all", metavar="NAMES",
                   help="comma-separated allocators (default: all)")
    p.add_argument("--cases", default="all", metavar="NAMES",
                   help="comma-separated cases (default: all; see misuse_matrix --list)")
    p.add_argument("--timeout", type=float, default=20.0, metavar="S",
                   help="seconds per run (default %(default)s)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    p.add_argument("--details", action="store_true",
                   help="after the table, the grounds of every verdict")
    p.add_argument("--check-hakmem", action="store_true",
                   help="exit 1 unless hakmem's columns keep hakmem's promise")
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    bin_dir = args.bin_dir or default_bin_dir()
    program = args.program or os.path.join(bin_dir, PROGRAM)
    if not os.access(program, os.X_OK):
        print("misuse_matrix: program not found: %s (build //hakmem/tests/reliability:"
              "misuse_matrix, or pass --bin-dir/--program)" % program, file=sys.stderr)
        return 2
    try:
        names = parse_list(args.alloc, ALLOCATOR_NAMES, "allocator")
        all_cases = list_cases(program)
        case_names = parse_list(args.cases, [c for c, _ in all_cases], "case")
    except ValueError as e:
        print("misuse_matrix: %s" % e, file=sys.stderr)
        return 2
    allocs, skipped, errors = resolve_allocators(names, bin_dir, args.peer_lib_dir, args.scudo)
    if errors:
        for e in errors:
            print("misuse_matrix: %s" % e, file=sys.stderr)
        return 2
    results = run_matrix(program, case_names, allocs, args.timeout, args.jobs)
    run_names = [a.name for a in allocs]
    failures = hakmem_failures(results) if args.check_hakmem else []
    if args.json:
        json.dump({
            "program": program,
            "cases": [{"name": c, "what": w} for c, w in all_cases if c in case_names],
            "allocators": [{"name": a.name, "preload": a.preload} for a in allocs],
            "skipped": skipped,
            "results": results,
            "hakmem_failures": failures,
        }, sys.stdout, indent=1)
        print()
    else:
        print(markdown_table(case_names, run_names, results))
        # The hakmem paths show the build mode (k8-opt is --config=release).
        print("\nAllocators:")
        for a in allocs:
            print("  %-19s %s" % (a.name, a.preload or "(no preload: glibc's malloc)"))
        for name, reason in skipped.items():
            print("  %-19s skipped: %s" % (name, reason))
        print("\nCases:")
        for c, w in all_cases:
            if c in case_names:
                print("  %-27s %s" % (c, w))
        if args.details:
            print("\nDetails (case / allocator: verdict -- grounds):")
            print(details_text(results))
        if args.check_hakmem:
            if failures:
                print("\nhakmem does not keep its promise in %d cell(s):" % len(failures))
                print("\n".join("  " + f for f in failures))
            else:
                print("\nhakmem: every cell as promised")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
