#!/usr/bin/env python3
"""Run a larson binary under several allocators side by side.

Every allocator runs the very same binary; allocators other than glibc are
injected with LD_PRELOAD.  The order of allocators is rotated from round to
round so that slow drift of the machine (thermal, other load) does not
systematically favour one of them.

For each run the peak RSS and CPU times come from os.wait4(), and the
throughput from the binary's last line, "Throughput = N operations per second".

Example:
    bazel build --config=release //hakmem/bench:larson_system //hakmem:libhakmem.so
    tools/larson_compare.py --rounds 3 --threads 1,2,4 \\
        --hakmem bazel-bin/hakmem/libhakmem.so \\
        bazel-bin/hakmem/bench/larson_system

Python 3 standard library only.
"""

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import sys
import tempfile
import time

LIBDIR = "/usr/lib/x86_64-linux-gnu"
SYSTEM_ALLOCATORS = [
    ("mimalloc", "libmimalloc.so.2"),
    ("jemalloc", "libjemalloc.so.2"),
    ("tcmalloc", "libtcmalloc_minimal.so.4"),
]
THROUGHPUT_RE = re.compile(r"^Throughput = (\d+) operations per second\s*$")
PRELOAD_FAIL_RE = re.compile(r"ld\.so: object .* cannot be preloaded")


def parse_threads(text):
    try:
        values = [int(x) for x in text.split(",") if x.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError("expected a comma-separated list of integers, e.g. 1,2,4")
    if not values or any(v < 1 or v > 1024 for v in values):
        raise argparse.ArgumentTypeError("thread counts must be in 1..1024")
    return values


def parse_larson_args(text):
    parts = shlex.split(text)
    if len(parts) != 6 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(
            "expected 6 non-negative integers: seconds min-size max-size chunks rounds seed "
            "(the thread count is appended from --threads)")
    return parts


def parse_alloc(text):
    name, sep, path = text.partition("=")
    name = name.strip()
    if not sep or not name or not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        raise argparse.ArgumentTypeError("expected NAME=PRELOAD_PATH (path may be empty for no preload)")
    return name, path.strip()


def positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an integer")
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return v


def build_parser():
    p = argparse.ArgumentParser(
        description="Run a larson binary under several allocators (via LD_PRELOAD) side by side.",
        epilog="Default allocators: glibc (no preload), hakmem (if --hakmem is given) and "
               "mimalloc/jemalloc/tcmalloc from %s when installed. --alloc adds an allocator "
               "or replaces a default of the same name; --only restricts the set." % LIBDIR)
    p.add_argument("binary", metavar="BINARY", help="larson binary (ideally larson_system)")
    p.add_argument("--rounds", type=positive_int, default=3, help="runs per allocator and thread count (default 3)")
    p.add_argument("--threads", type=parse_threads, default=[1, 2, 4], help="comma-separated thread counts (default 1,2,4)")
    p.add_argument("--args", dest="larson_args", type=parse_larson_args,
                   default=parse_larson_args("5 8 1000 5000 100 4141"),
                   help='larson arguments without the thread count (default "5 8 1000 5000 100 4141")')
    p.add_argument("--alloc", action="append", type=parse_alloc, default=[], metavar="NAME=PATH",
                   help="add an allocator; empty PATH means no LD_PRELOAD (repeatable)")
    p.add_argument("--hakmem", metavar="PATH", help="path to libhakmem.so, adds allocator 'hakmem'")
    p.add_argument("--only", metavar="NAMES", help="comma-separated allocator names to keep")
    p.add_argument("--timeout", type=positive_int, default=None,
                   help="seconds before a run is killed (default: 4 x duration + 60)")
    p.add_argument("--json", metavar="FILE", help="write all raw figures to FILE")
    p.add_argument("--no-snapshot", action="store_true",
                   help="run BINARY and the preload libraries in place instead of private copies")
    return p


def collect_allocators(args, parser):
    allocs = [("glibc", "")]
    if args.hakmem:
        allocs.append(("hakmem", args.hakmem))
    for name, lib in SYSTEM_ALLOCATORS:
        path = os.path.join(LIBDIR, lib)
        if os.path.exists(path):
            allocs.append((name, path))
    for name, path in args.alloc:
        for i, (n, _) in enumerate(allocs):
            if n == name:
                allocs[i] = (name, path)
                break
        else:
            allocs.append((name, path))
    if args.only:
        keep = [x.strip() for x in args.only.split(",") if x.strip()]
        unknown = [k for k in keep if k not in [n for n, _ in allocs]]
        if unknown:
            parser.error("--only names unknown allocator(s): %s" % ", ".join(unknown))
        allocs = [a for a in allocs if a[0] in keep]
    for name, path in allocs:
        if path and not os.path.isfile(path):
            parser.error("preload library for %s not found: %s" % (name, path))
    if not allocs:
        parser.error("no allocators selected")
    return allocs


def run_once(binary, argv_tail, preload, timeout):
    """Run one benchmark process; returns a dict of raw figures."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = os.path.abspath(preload)
    argv = [binary] + argv_tail
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:  # child
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                os.execve(binary, argv, env)
            except BaseException as exc:  # exec failed
                try:
                    os.write(2, ("exec failed: %s\n" % exc).encode())
                finally:
                    os._exit(127)
        timed_out = False
        while True:
            wpid, status, ru = os.wait4(pid, os.WNOHANG)
            if wpid == pid:
                break
            if time.monotonic() - start > timeout:
                timed_out = True
                os.kill(pid, 9)
                wpid, status, ru = os.wait4(pid, 0)
                break
            time.sleep(0.05)
        wall = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")

    if os.WIFEXITED(status):
        exit_code = os.WEXITSTATUS(status)
    else:
        exit_code = -os.WTERMSIG(status)
    throughput = None
    lines = [l for l in stdout.splitlines() if l.strip()]
    if lines:
        m = THROUGHPUT_RE.match(lines[-1])
        if m:
            throughput = int(m.group(1))
    error = None
    if timed_out:
        error = "timed out after %d s" % timeout
    elif exit_code != 0:
        error = "exit status %d" % exit_code
    elif throughput is None:
        error = "no Throughput line"
    elif PRELOAD_FAIL_RE.search(stderr):
        error = "LD_PRELOAD was not applied"
    return {
        "argv": argv,
        "preload": preload,
        "exit_code": exit_code,
        "throughput": throughput,
        "maxrss_kib": ru.ru_maxrss,
        "utime_s": ru.ru_utime,
        "stime_s": ru.ru_stime,
        "wall_s": wall,
        "error": error,
        "stderr_tail": stderr[-2000:],
    }


def fmt_int(v):
    return "{:,}".format(int(v))


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    binary = args.binary
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        parser.error("BINARY is not an executable file: %s" % binary)
    binary = os.path.abspath(binary)
    allocs = collect_allocators(args, parser)
    seconds = int(args.larson_args[0])
    timeout = args.timeout if args.timeout else 4 * seconds + 60
    label = os.path.basename(binary)

    # Bazel replaces bazel-bin/ outputs (and flips the bazel-bin symlink)
    # whenever anyone builds in the same tree, possibly in another
    # configuration.  Copy the binary and any preload library that is not a
    # system one, so every run of this comparison uses the same files.
    snapdir = None
    snapshot_of = {}
    if not args.no_snapshot:
        snapdir = tempfile.mkdtemp(prefix="larson_compare.")
        dst = os.path.join(snapdir, os.path.basename(binary))
        shutil.copy2(binary, dst)
        snapshot_of[dst] = binary
        binary = dst
        copied = []
        for name, path in allocs:
            if path and not os.path.abspath(path).startswith(LIBDIR + "/"):
                dst = os.path.join(snapdir, "%s__%s" % (name, os.path.basename(path)))
                shutil.copy2(path, dst)
                snapshot_of[dst] = os.path.abspath(path)
                path = dst
            copied.append((name, path))
        allocs = copied
    try:
        return run_all(args, binary, allocs, label, timeout, snapshot_of)
    finally:
        if snapdir:
            shutil.rmtree(snapdir, ignore_errors=True)


def run_all(args, binary, allocs, label, timeout, snapshot_of):
    total = args.rounds * len(args.threads) * len(allocs)
    runs = []
    n = 0
    for r in range(args.rounds):
        # Rotate the allocator order each round (A B C, B C A, C A B, ...).
        k = r % len(allocs)
        order = allocs[k:] + allocs[:k]
        for t in args.threads:
            for name, path in order:
                n += 1
                print("[%d/%d] %s t=%d %s round %d" % (n, total, label, t, name, r + 1),
                      file=sys.stderr, flush=True)
                res = run_once(binary, list(args.larson_args) + [str(t)], path, timeout)
                res.update({"allocator": name, "threads": t, "round": r + 1,
                            "preload": snapshot_of.get(path, path)})
                res["argv"][0] = snapshot_of.get(binary, binary)
                if res["error"]:
                    print("    FAILED: %s\n%s" % (res["error"], res["stderr_tail"].rstrip()),
                          file=sys.stderr, flush=True)
                runs.append(res)

    # Summaries.
    summary = []
    glibc_median = {}
    for t in args.threads:
        for name, path in allocs:
            rs = [x for x in runs if x["allocator"] == name and x["threads"] == t]
            ok = [x for x in rs if not x["error"]]
            row = {"allocator": name, "threads": t, "runs": len(rs), "failed": len(rs) - len(ok)}
            if ok:
                tp = [x["throughput"] for x in ok]
                row.update({
                    "median_throughput": statistics.median(tp),
                    "min_throughput": min(tp),
                    "max_throughput": max(tp),
                    "median_maxrss_mib": statistics.median(x["maxrss_kib"] for x in ok) / 1024.0,
                    "median_cpu_s": statistics.median(x["utime_s"] + x["stime_s"] for x in ok),
                })
                if name == "glibc":
                    glibc_median[t] = row["median_throughput"]
            summary.append(row)
    for row in summary:
        base = glibc_median.get(row["threads"])
        if base and "median_throughput" in row:
            row["ratio_to_glibc"] = row["median_throughput"] / base

    header = ["allocator", "threads", "median ops/s", "min..max ops/s", "spread", "vs glibc",
              "peak RSS MiB", "CPU s"]
    table = []
    for row in summary:
        if "median_throughput" not in row:
            table.append([row["allocator"], str(row["threads"]), "FAILED", "", "", "", "", ""])
            continue
        med = row["median_throughput"]
        spread = (row["max_throughput"] - row["min_throughput"]) / med * 100 if med else 0.0
        table.append([
            row["allocator"] + ("" if not row["failed"] else " (%d failed)" % row["failed"]),
            str(row["threads"]),
            fmt_int(med),
            "%s..%s" % (fmt_int(row["min_throughput"]), fmt_int(row["max_throughput"])),
            "%.1f%%" % spread,
            ("%.2fx" % row["ratio_to_glibc"]) if "ratio_to_glibc" in row else "-",
            "%.1f" % row["median_maxrss_mib"],
            "%.2f" % row["median_cpu_s"],
        ])
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(header)]
    right = {1, 2, 3, 4, 5, 6, 7}

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    print("larson %s (+ threads), %d round(s), binary %s" % (" ".join(args.larson_args), args.rounds,
                                                           snapshot_of.get(binary, binary)))
    print(line(header))
    print(line(["-" * w for w in widths]))
    for r in table:
        print(line(r))
    print("(1 operation = 1 free + 1 malloc; spread = (max-min)/median)")

    if args.json:
        doc = {
            "binary": snapshot_of.get(binary, binary),
            "larson_args": args.larson_args,
            "threads": args.threads,
            "rounds": args.rounds,
            "allocators": [{"name": n, "preload": snapshot_of.get(p, p)} for n, p in allocs],
            "host": {"machine": platform.machine(), "node": platform.node(),
                     "cpus": os.cpu_count(), "python": platform.python_version()},
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "runs": runs,
            "summary": summary,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")

    return 1 if any(x["error"] for x in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
