#!/usr/bin/env python3
"""Unit tests of tools/bench.py: its pure parts, plus the runner end to end on
fake benchmark binaries (shell scripts) and a local HTTP server for --push.

    bazel test //tools:bench_test
    python3 -m unittest tools/bench_test.py     (from the workspace root)
"""

import contextlib
import http.server
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import bench_programs  # noqa: E402
import workloads  # noqa: E402  (tools/programs/, on the path bench_programs set)

HERE = os.path.dirname(os.path.abspath(__file__))
TMP_ROOT = os.environ.get("TEST_TMPDIR") or None


def parse_exit(argv):
    """(exit code, stderr) of bench.parse_args(argv), which must exit."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        with self_raises_systemexit() as box:
            bench.parse_args(argv)
    return box["code"], err.getvalue()


@contextlib.contextmanager
def self_raises_systemexit():
    box = {"code": None}
    try:
        yield box
    except SystemExit as exc:
        box["code"] = exc.code
    else:
        raise AssertionError("expected SystemExit")


class ArgumentTest(unittest.TestCase):
    def test_defaults(self):
        a = bench.parse_args([])
        self.assertEqual(a.mode, "quick")
        self.assertEqual(a.rounds, bench.MODES["quick"]["rounds"])
        self.assertEqual(a.bench, bench.all_case_ids())
        self.assertEqual(a.alloc, bench.DEFAULT_ALLOCATORS)
        self.assertNotIn("hakmem-unguarded", a.alloc)
        self.assertIsNone(a.json)
        self.assertIsNone(a.push)
        self.assertIsNone(a.bin_dir)

    def test_unguarded_only_by_name(self):
        # hakmem with the guarded pool off: named, or beside "all"; its runs
        # get HAKMEM_GUARD_SAMPLE=0 and the default library.
        self.assertNotIn("hakmem-unguarded", bench.parse_args(["--alloc", "all"]).alloc)
        self.assertEqual(bench.parse_args(["--alloc", "hakmem-unguarded,hakmem"]).alloc,
                         ["hakmem", "hakmem-unguarded"])
        self.assertIn("hakmem-unguarded",
                      bench.parse_args(["--alloc", "all,hakmem-unguarded"]).alloc)
        a = bench.Allocator("hakmem-unguarded", "fastcache", "/x/libhakmem.so")
        env = bench.clean_env(a.preload, a.env)
        self.assertEqual(env["HAKMEM_GUARD_SAMPLE"], "0")
        self.assertEqual(env["LD_PRELOAD"], "/x/libhakmem.so")
        self.assertNotIn("HAKMEM_GUARD_SAMPLE", bench.clean_env("/x/libhakmem.so",
                                                                 bench.Allocator("hakmem", "", None).env))
        self.assertEqual(bench.LIBRARY_TARGETS["hakmem-unguarded"], bench.LIBRARY_TARGETS["hakmem"])

    def test_profiled_only_by_name(self):
        self.assertNotIn("hakmem-profiled", bench.parse_args(["--alloc", "all"]).alloc)
        a = bench.Allocator("hakmem-profiled", "fastcache", "/x/libhakmem.so")
        env = bench.clean_env(a.preload, a.env)
        self.assertEqual(env["HAKMEM_PROF"], "1")
        self.assertEqual(env["HAKMEM_PROF_FILE"], "/dev/null")
        self.assertEqual(bench.LIBRARY_TARGETS["hakmem-profiled"], bench.LIBRARY_TARGETS["hakmem"])

    def test_full_and_rounds(self):
        self.assertEqual(bench.parse_args(["--full"]).rounds, 5)
        self.assertEqual(bench.parse_args(["--full"]).mode, "full")
        self.assertEqual(bench.parse_args(["--full", "--rounds", "3"]).rounds, 3)
        self.assertEqual(bench.parse_args(["--quick", "--rounds=1"]).rounds, 1)

    def test_bench_names(self):
        self.assertEqual(bench.parse_args(["--bench", "larson"]).bench,
                         ["larson/t1", "larson/t2", "larson/t4", "larson/orig"])
        self.assertEqual(bench.parse_args(["--bench", "micro,mtstress/churn"]).bench,
                         ["mtstress/churn", "micro"])
        self.assertEqual(bench.parse_args(["--bench", "all"]).bench, bench.all_case_ids())
        # 15 modes, calloc-swap at two thread counts.
        self.assertEqual(len(bench.parse_args(["--bench", "mtstress"]).bench), 16)
        self.assertEqual(bench.parse_args(["--bench", "mtstress/oneway64,mtstress/huge"]).bench,
                         ["mtstress/huge", "mtstress/oneway64"])
        self.assertEqual(bench.parse_args(["--bench", "mtstress/medium-xthread"]).bench,
                         ["mtstress/medium-xthread"])
        # A mode with several thread counts: all of them by its name, or one.
        self.assertEqual(bench.parse_args(["--bench", "mtstress/calloc-swap"]).bench,
                         ["mtstress/calloc-swap/t8", "mtstress/calloc-swap/t32"])
        self.assertEqual(bench.parse_args(["--bench", "mtstress/calloc-swap/t32,larson/t1"]).bench,
                         ["larson/t1", "mtstress/calloc-swap/t32"])
        self.assertEqual(bench.parse_args(["--bench", "mtstress,mtstress/calloc-swap"]).bench,
                         bench.parse_args(["--bench", "mtstress"]).bench)
        with self.assertRaises(ValueError):
            bench.parse_bench_list("mtstress/calloc-swap/t16")
        with self.assertRaises(ValueError):
            bench.parse_bench_list("mtstress/calloc")
        footprint = ["footprint/python-pass", "footprint/python-imports", "footprint/git-log",
                     "footprint/git-log-p", "footprint/ls-R", "footprint/sort"]
        self.assertEqual(bench.parse_args(["--bench", "footprint"]).bench, footprint)
        self.assertEqual(bench.parse_args(["--bench", "footprint/sort,larson/t1"]).bench,
                         ["larson/t1", "footprint/sort"])
        # The list CI runs (.ci/run) picks no footprint case, and the whole programs suite.
        ci = ("larson/t1,larson/t2,mtstress/prodcons,mtstress/churn,mtstress/xthread-mixed,"
              "mtstress/batch-lifo,mtstress/batch-fifo,mtstress/workingset,mtstress/oneway64,"
              "programs")
        programs = ["programs/" + p for p in bench_programs.PROGRAMS]
        self.assertEqual(bench.parse_args(["--quick", "--rounds", "1", "--bench", ci]).bench,
                         sorted(ci.split(",")[:-1], key=bench.all_case_ids().index) + programs)
        for mode in ("--quick", "--full"):
            chosen = bench.parse_args([mode]).bench
            for i in footprint + ["mtstress/medium-xthread"]:
                self.assertIn(i, chosen)

    def test_alloc_names_keep_canonical_order(self):
        self.assertEqual(bench.parse_args(["--alloc", "glibc,hakmem"]).alloc, ["hakmem", "glibc"])
        self.assertEqual(bench.parse_args(["--alloc", " tcmalloc , glibc "]).alloc,
                         ["glibc", "tcmalloc"])

    def test_bad_arguments_exit_2_with_usage(self):
        bad = [
            ["--quick", "--full"],
            ["--rounds", "0"],
            ["--rounds", "x"],
            ["--rounds", "101"],
            ["--bench", "bogus"],
            ["--bench", ""],
            ["--bench", "footprint/bogus"],
            ["--alloc", "ptmalloc"],
            ["--push", "ftp://example"],
            ["--push", "localhost:8321"],
            ["--no-such-option"],
            ["positional"],
        ]
        for argv in bad:
            with self.subTest(argv=argv):
                code, err = parse_exit(argv)
                self.assertEqual(code, 2)
                self.assertIn("usage:", err)
        _, err = parse_exit(["--bench", "bogus"])
        self.assertIn("unknown benchmark 'bogus'", err)
        _, err = parse_exit(["--alloc", "ptmalloc"])
        self.assertIn("unknown allocator 'ptmalloc'", err)

    def test_help_exits_0(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), self_raises_systemexit() as box:
            bench.parse_args(["--help"])
        self.assertEqual(box["code"], 0)
        self.assertIn("--bin-dir", out.getvalue())

    def test_script_bad_argument_exit_status(self):
        p = subprocess.run([sys.executable, os.path.join(HERE, "bench.py"), "--rounds", "-1"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage:", p.stderr)
        self.assertEqual(p.stdout, "")


class VariantsTest(unittest.TestCase):
    def test_hakmem_allocators_come_from_variants_bzl(self):
        vs = bench.variants.load()
        self.assertEqual(bench.HAKMEM_NAMES[0], "hakmem")
        self.assertEqual(len(bench.HAKMEM_NAMES), len(vs))
        by_name = {a[0]: a for a in bench.ALLOCATORS}
        for v in vs:
            name = bench.variants.allocator_name(v)
            self.assertEqual(by_name[name], (name, v["short_name"], "hakmem",
                                             "hakmem/libhakmem%s.so" % v["suffix"]))
            self.assertEqual(bench.LIBRARY_TARGETS[name], "//hakmem:libhakmem%s.so" % v["suffix"])


class CaseTest(unittest.TestCase):
    def test_quick_cases(self):
        cases = bench.make_cases("quick", bench.all_case_ids())
        self.assertEqual([c.id for c in cases], bench.all_case_ids())
        larson = cases[1]
        self.assertEqual(larson.argv_tail, ["2", "8", "1000", "5000", "100", "4141", "2"])
        self.assertEqual(larson.params, "2 8 1000 5000 100 4141")
        self.assertEqual(larson.threads, 2)
        churn = [c for c in cases if c.id == "mtstress/churn"][0]
        self.assertEqual(churn.argv_tail[:4], ["--mode", "churn", "--threads", "2"])
        self.assertEqual(churn.benchmark, "mtstress/churn")
        micro = [c for c in cases if c.id == "micro"][0]
        self.assertFalse(micro.higher_is_better)
        self.assertTrue(larson.higher_is_better)

    def test_larson_orig_is_the_original_hakmem_configuration(self):
        case = bench.make_cases("full", ["larson/orig"])[0]
        self.assertEqual(case.argv_tail, ["5", "8", "128", "1024", "1", "12345", "4"])
        self.assertEqual(case.params, "5 8 128 1024 1 12345")
        self.assertEqual((case.benchmark, case.threads), ("larson", 4))

    def test_full_larson_is_5_seconds(self):
        cases = bench.make_cases("full", ["larson/t4"])
        self.assertEqual(cases[0].argv_tail, ["5", "8", "1000", "5000", "100", "4141", "4"])

    def test_mtstress_seconds(self):
        quick = bench.make_cases("quick", ["mtstress/large"])[0]
        self.assertEqual(quick.argv_tail, ["--mode", "large", "--threads", "2", "--seconds",
                                           "0.5", "--seed", "4141"])
        self.assertEqual(quick.params, "--mode large --seconds 0.5 --seed 4141")
        full = bench.make_cases("full", ["mtstress/large"])[0]
        self.assertIn("--seconds 3 ", full.params)

    def test_new_mtstress_modes(self):
        """Issues 11 and 15: every new mode is a case, with its own thread count."""
        new = ["xthread-mixed", "huge", "oversubscribed", "batch-lifo", "batch-fifo",
               "workingset", "oneway64"]
        ids = ["mtstress/" + m for m in new]
        for i in ids:
            self.assertIn(i, bench.all_case_ids())
        for mode in ("quick", "full"):
            cases = {c.id: c for c in bench.make_cases(mode, ids)}
            self.assertEqual(sorted(cases), sorted(ids))
            seconds = "%g" % bench.MODES[mode]["mtstress_seconds"]
            for m in new:
                c = cases["mtstress/" + m]
                self.assertEqual(c.argv_tail[:2], ["--mode", m])
                self.assertEqual(c.argv_tail[c.argv_tail.index("--seconds") + 1], seconds)
                self.assertEqual(c.argv_tail[c.argv_tail.index("--threads") + 1], str(c.threads))
                self.assertEqual(c.benchmark, "mtstress/" + m)
        threads = {c.id: c.threads for c in bench.make_cases("quick", ids)}
        self.assertEqual(threads["mtstress/huge"], 1)
        self.assertEqual(threads["mtstress/batch-lifo"], 1)
        self.assertEqual(threads["mtstress/batch-fifo"], 1)
        self.assertEqual(threads["mtstress/workingset"], 1)
        self.assertEqual(threads["mtstress/oneway64"], 2)
        self.assertEqual(threads["mtstress/xthread-mixed"], 2)
        with mock.patch.object(bench.os, "cpu_count", return_value=3):
            self.assertEqual(bench.make_cases("quick", ["mtstress/oversubscribed"])[0].threads, 48)
        with mock.patch.object(bench.os, "cpu_count", return_value=256):
            self.assertEqual(bench.make_cases("quick", ["mtstress/oversubscribed"])[0].threads,
                             1024)

    def test_medium_xthread(self):
        """Leaner than glibc: medium-xthread is a 2-thread mtstress case like the others."""
        self.assertIn("medium-xthread", bench.MTSTRESS_MODES)
        for mode in ("quick", "full"):
            (c,) = bench.make_cases(mode, ["mtstress/medium-xthread"])
            self.assertEqual(c.kind, "mtstress")
            self.assertEqual(c.benchmark, "mtstress/medium-xthread")
            self.assertEqual(c.threads, 2)
            self.assertEqual(c.argv_tail, ["--mode", "medium-xthread", "--threads", "2",
                                           "--seconds", "%g" % bench.MODES[mode]["mtstress_seconds"],
                                           "--seed", "4141"])
            self.assertTrue(c.higher_is_better)
            self.assertEqual(c.metric, ("ops_per_sec", "ops/s"))

    def test_per_mode_thread_counts(self):
        """A tuple in MTSTRESS_MODE_THREADS is one case per thread count."""
        self.assertEqual(bench.mtstress_thread_counts("churn"), (2,))
        self.assertEqual(bench.mtstress_thread_counts("huge"), (1,))
        self.assertEqual(bench.mtstress_thread_counts("calloc-swap"), (8, 32))
        with mock.patch.object(bench.os, "cpu_count", return_value=2):
            self.assertEqual(bench.mtstress_thread_counts("oversubscribed"), (32,))
        self.assertEqual(bench.mtstress_cases("churn"), [("mtstress/churn", 2)])
        with mock.patch.dict(bench.MTSTRESS_MODE_THREADS, {"churn": (1, 4)}):
            self.assertEqual(bench.mtstress_cases("churn"),
                             [("mtstress/churn/t1", 1), ("mtstress/churn/t4", 4)])
            self.assertIn("mtstress/churn/t4", bench.all_case_ids())
            self.assertNotIn("mtstress/churn", bench.all_case_ids())

    def test_calloc_swap(self):
        """Issue 21: calloc-swap at 8 and at 32 threads, one benchmark name."""
        self.assertIn("calloc-swap", bench.MTSTRESS_MODES)
        ids = ["mtstress/calloc-swap/t8", "mtstress/calloc-swap/t32"]
        all_ids = bench.all_case_ids()
        self.assertEqual(all_ids[all_ids.index(ids[0]):all_ids.index(ids[0]) + 2], ids)
        self.assertNotIn("mtstress/calloc-swap", all_ids)
        for mode in ("quick", "full"):
            seconds = "%g" % bench.MODES[mode]["mtstress_seconds"]
            cases = bench.make_cases(mode, all_ids)
            got = [c for c in cases if c.benchmark == "mtstress/calloc-swap"]
            self.assertEqual([c.id for c in got], ids)
            self.assertEqual([c.threads for c in got], [8, 32])
            self.assertEqual([c.label for c in got],
                             ["mtstress calloc-swap t=8", "mtstress calloc-swap t=32"])
            for c, t in zip(got, (8, 32)):
                self.assertEqual(c.kind, "mtstress")
                self.assertEqual(c.argv_tail, ["--mode", "calloc-swap", "--threads", str(t),
                                               "--seconds", seconds, "--seed", "4141"])
                self.assertEqual(c.params, "--mode calloc-swap --seconds %s --seed 4141" % seconds)
                self.assertEqual(c.metric, ("ops_per_sec", "ops/s"))
                self.assertTrue(c.higher_is_better)

    def test_modes_are_mtstress_modes(self):
        """MTSTRESS_MODES is mtstress.c's MODES table (a data file of //tools:bench_test)."""
        with open(os.path.join(HERE, "..", "hakmem", "bench", "mtstress.c")) as f:
            src = f.read()
        names = re.findall(r'^\s*\[M_[A-Z0-9_]+\] = \{"([a-z0-9-]+)"', src, re.M)
        self.assertEqual(sorted(names), sorted(bench.MTSTRESS_MODES))
        for m in bench.MTSTRESS_MODES:
            self.assertIn('"  %s ' % m, src)  # described in the usage text

    def test_footprint_cases(self):
        cases = bench.make_cases("quick", bench.all_case_ids())
        fp = [c for c in cases if c.kind == "footprint"]
        self.assertEqual([c.id for c in fp], ["footprint/" + p for p in bench.FOOTPRINT_PROGRAMS])
        # After micro, before the programs suite.
        self.assertEqual([c.kind for c in cases[-len(fp) - len(bench_programs.PROGRAMS):-len(
            bench_programs.PROGRAMS)]], ["footprint"] * len(fp))
        for c in fp:
            self.assertEqual(c.benchmark, c.id)
            self.assertEqual(c.program, c.id.split("/", 1)[1])
            self.assertFalse(c.higher_is_better)
            self.assertEqual(c.metric, ("peak_rss_kb", "KiB"))
            self.assertEqual(c.threads, 1)
            self.assertTrue(os.path.isabs(c.argv_tail[0]))
            self.assertTrue(0 < len(c.params) <= 200)
        # The same programs in both modes.
        full = [c for c in bench.make_cases("full", bench.all_case_ids()) if c.kind == "footprint"]
        self.assertEqual([(c.argv_tail, c.params) for c in full],
                         [(c.argv_tail, c.params) for c in fp])
        by = {c.program: c for c in fp}
        self.assertEqual(by["python-pass"].argv_tail, ["/usr/bin/python3", "-c", "pass"])
        self.assertEqual(by["git-log"].argv_tail[-2:], ["log", "--oneline"])
        self.assertIn(bench.FOOTPRINT_WORK + "/lines.txt", by["sort"].argv_tail)
        self.assertEqual(by["ls-R"].argv_tail[1:], ["-R", "/usr/include"])
        for m in ("json", "re", "collections", "datetime", "decimal", "http.client", "argparse",
                  "subprocess", "pathlib", "typing", "unittest"):
            self.assertIn(m, bench.FOOTPRINT_MODULES)


class StatsTest(unittest.TestCase):
    def test_summarize(self):
        self.assertEqual(bench.summarize([3, 1, 2]), (2, 1, 3))
        self.assertEqual(bench.summarize([4, 1, 2, 3]), (2.5, 1, 4))
        self.assertEqual(bench.summarize([7.5]), (7.5, 7.5, 7.5))
        with self.assertRaises(ValueError):
            bench.summarize([])

    def test_spread(self):
        self.assertAlmostEqual(bench.spread_pct(100.0, 95.0, 105.0), 10.0)
        self.assertEqual(bench.spread_pct(5.0, 5.0, 5.0), 0.0)
        self.assertIsNone(bench.spread_pct(0, 0, 1))

    def test_ratio(self):
        self.assertAlmostEqual(bench.ratio(150.0, 100.0, True), 1.5)
        self.assertAlmostEqual(bench.ratio(5.0, 10.0, False), 2.0)   # half the ns: 2x faster
        self.assertAlmostEqual(bench.ratio(20.0, 10.0, False), 0.5)
        self.assertIsNone(bench.ratio(None, 10.0, True))
        self.assertIsNone(bench.ratio(1.0, None, True))
        self.assertIsNone(bench.ratio(1.0, 0.0, True))
        self.assertIsNone(bench.ratio(0.0, 1.0, False))

    def test_best_of(self):
        med = {"glibc": 10.0, "mimalloc": 30.0, "jemalloc": 20.0, "hakmem": 99.0,
               "tcmalloc": None}
        self.assertEqual(bench.best_of(med, bench.PEER_NAMES, True), ("mimalloc", 30.0))
        self.assertEqual(bench.best_of(med, bench.PEER_NAMES, False), ("glibc", 10.0))
        self.assertEqual(bench.best_of({"hakmem": 1.0}, bench.PEER_NAMES, True), (None, None))

    def test_geomean(self):
        self.assertAlmostEqual(bench.geomean([2.0, 8.0]), 4.0)
        self.assertAlmostEqual(bench.geomean([2.0, None, 8.0]), 4.0)
        self.assertIsNone(bench.geomean([None]))

    def test_rotation_and_plan(self):
        allocs = [bench.Allocator(n, "", None) for n in ("a", "b", "c")]
        cases = bench.make_cases("quick", ["larson/t1", "larson/t2"])
        jobs = bench.plan_jobs(cases, allocs, 4)
        self.assertEqual(len(jobs), 4 * 2 * 3)
        self.assertEqual([j.index for j in jobs], list(range(1, 25)))
        firsts = [j.alloc.name for j in jobs if j.case is cases[0]][::3]
        self.assertEqual(firsts, ["a", "b", "c", "a"])
        for r in range(1, 5):
            for c in cases:
                names = sorted(j.alloc.name for j in jobs if j.round == r and j.case is c)
                self.assertEqual(names, ["a", "b", "c"])
        # Within a round the allocators of one case run back to back.
        self.assertEqual([j.alloc.name for j in jobs[3:6]], ["a", "b", "c"])
        self.assertEqual([j.alloc.name for j in jobs[6:9]], ["b", "c", "a"])
        self.assertEqual(bench.rotate([], 3), [])


class FormatTest(unittest.TestCase):
    def test_si(self):
        self.assertEqual(bench.fmt_si(71234567), "71.2M")
        self.assertEqual(bench.fmt_si(1.5e9), "1.50G")
        self.assertEqual(bench.fmt_si(999), "999")
        self.assertEqual(bench.fmt_si(123456), "123k")
        self.assertEqual(bench.fmt_si(None), "-")

    def test_values_ratios_durations(self):
        self.assertEqual(bench.fmt_value(3.234, "ns"), "3.23")
        self.assertEqual(bench.fmt_value(25.44, "ns"), "25.4")
        self.assertEqual(bench.fmt_value(253836.0, "ns"), "253,836")
        self.assertEqual(bench.fmt_ratio(1.234), "1.23x")
        self.assertEqual(bench.fmt_ratio(None), "-")
        self.assertEqual(bench.fmt_pct(2.345), "2.3%")
        self.assertEqual(bench.fmt_duration(42), "42s")
        self.assertEqual(bench.fmt_duration(190), "3m10s")
        self.assertEqual(bench.fmt_duration(3700), "1h01m")

    def test_table_alignment(self):
        t = bench.format_table(["name", "value"], [["a", "1"], ["longer", "12345"], "a note"])
        lines = t.splitlines()
        self.assertEqual(lines[0], "name    value")
        self.assertEqual(lines[1], "------  -----")
        self.assertEqual(lines[2], "a           1")
        self.assertEqual(lines[3], "longer  12345")
        self.assertEqual(lines[4], "a note")
        with self.assertRaises(ValueError):
            bench.format_table(["a", "b"], [["only one"]])

    def test_group_table(self):
        case, allocs, ms = fake_measurements()
        text = bench.group_table("larson t=2", case, ms, 3)
        lines = text.splitlines()
        self.assertIn("higher is better", lines[0])
        self.assertIn("3 rounds", lines[0])
        header = lines[1]
        for col in ("allocator", "median", "spread", "vs glibc", "vs best peer", "RSS MiB",
                    "RSS vs glibc"):
            self.assertIn(col, header)
        rows = {l.split()[0]: l for l in lines[3:3 + len(ms)]}
        self.assertIn("2.00x", rows["hakmem"])       # 200 vs glibc 100
        self.assertIn("1.33x", rows["hakmem"])       # 200 vs best peer 150
        self.assertIn("FAILED", rows["tcmalloc"])
        self.assertTrue(any("best peer: mimalloc" in l for l in lines))
        self.assertTrue(any("tcmalloc: all 2 run(s) failed: exit status 1" in l for l in lines))
        # Columns line up: every row has the header's width or less.
        width = len(lines[2])
        for l in lines[1:3 + len(ms)]:
            self.assertLessEqual(len(l), width)

    def test_micro_table_ratios_favour_lower_ns(self):
        case = bench.make_cases("quick", ["micro"])[0]
        allocs = [bench.Allocator(n, v, None) for n, v, _, _ in bench.ALLOCATORS
              if n in bench.DEFAULT_ALLOCATORS]
        jobs = []
        ns = {"hakmem": 5.0, "hakmem-nofastcache": 6.0, "hakmem-hardened": 5.5, "glibc": 20.0, "mimalloc": 10.0,
              "jemalloc": 12.0, "tcmalloc": 11.0, "scudo": 30.0}
        for r in (1, 2):
            for a in allocs:
                j = bench.Job(len(jobs) + 1, case, a, r)
                p = bench.ProcResult()
                p.exit_code, p.wall_s, p.cpu_s, p.peak_rss_kb = 0, 3.0, 2.5, 8192
                j.proc = p
                j.micro = {"BM_MallocFree/64": (ns[a.name], 1)}
                jobs.append(j)
        groups, failures = bench.aggregate(jobs, [case], allocs)
        self.assertEqual(failures, [])
        text = bench.micro_table(case, groups, allocs, 2)
        self.assertIn("lower is better", text)
        row = [l for l in text.splitlines() if l.startswith("BM_MallocFree/64")][0]
        self.assertIn("mimalloc", row)
        self.assertIn("2.00x", row)   # best peer 10 ns / hakmem 5 ns
        self.assertIn("4.00x", row)   # glibc 20 ns / hakmem 5 ns
        proc = bench.micro_process_table(case, jobs, allocs)
        self.assertIn("8.0", proc)
        summary = bench.summary_table(groups)
        self.assertIn("micro (geomean of 1)", summary)


def fake_measurements():
    case = bench.make_cases("quick", ["larson/t2"])[0]
    allocs = [bench.Allocator(n, v, None) for n, v, _, _ in bench.ALLOCATORS
              if n in bench.DEFAULT_ALLOCATORS]
    ops = {"hakmem": [190.0, 200.0, 210.0], "hakmem-nofastcache": [100.0, 120.0, 110.0],
           "hakmem-hardened": [160.0, 170.0, 180.0],
           "glibc": [100.0, 90.0, 110.0], "mimalloc": [150.0, 150.0, 150.0],
           "jemalloc": [140.0, 145.0, 130.0], "tcmalloc": None,
           "scudo": [80.0, 85.0, 90.0]}
    jobs = []
    for r in range(3):
        for a in allocs:
            if ops[a.name] is None and r == 2:
                continue
            j = bench.Job(len(jobs) + 1, case, a, r + 1)
            p = bench.ProcResult()
            p.wall_s, p.cpu_s = 2.0, 3.5
            if ops[a.name] is None:
                p.exit_code = 1
                bench.evaluate(j, p)
            else:
                p.exit_code = 0
                p.peak_rss_kb = 20480 if a.name != "glibc" else 10240
                p.stdout = "blah\nThroughput = %d operations per second\n" % ops[a.name][r]
                bench.evaluate(j, p)
            jobs.append(j)
    groups, _ = bench.aggregate(jobs, [case], allocs)
    return case, allocs, groups[0][2]


class ParseTest(unittest.TestCase):
    def test_throughput(self):
        self.assertEqual(bench.parse_throughput(
            "threads: 2\nThroughput = 80874307 operations per second\n"), 80874307)
        self.assertEqual(bench.parse_throughput(
            "Throughput = 12 operations per second\n\n  \n"), 12)
        self.assertEqual(bench.parse_throughput("Throughput = 1.5e6 operations per second"),
                         1.5e6)
        self.assertIsNone(bench.parse_throughput(""))
        self.assertIsNone(bench.parse_throughput("Throughput = 0 operations per second"))
        self.assertIsNone(bench.parse_throughput(
            "Throughput = 5 operations per second\nsomething after\n"))
        self.assertIsNone(bench.parse_throughput("Throughput = lots operations per second"))
        self.assertIsNone(bench.parse_throughput("Throughput: 5 ops/s"))

    def micro_doc(self, entries):
        return json.dumps({"context": {"library_build_type": "release"}, "benchmarks": entries})

    def test_micro_items_per_second_and_cpu_time(self):
        text = self.micro_doc([
            {"name": "BM_MallocFree/64", "run_name": "BM_MallocFree/64", "run_type": "iteration",
             "iterations": 100, "real_time": 9.5, "cpu_time": 5.0, "time_unit": "ns",
             "items_per_second": 2.0e8},
            {"name": "BM_Batch/n:1000", "run_type": "iteration", "real_time": 8.0,
             "cpu_time": 7.5, "time_unit": "us", "items_per_second": 1.25e8},
            {"name": "BM_NoItems", "run_type": "iteration", "real_time": 3.0, "cpu_time": 2.0,
             "time_unit": "ms"},
            {"name": "BM_T/threads:4", "run_type": "iteration", "real_time": 1, "cpu_time": 1,
             "time_unit": "ns", "threads": 4},
            {"name": "BM_Named/threads:2", "run_type": "iteration", "real_time": 1,
             "cpu_time": 1, "time_unit": "ns"},
        ])
        vals, errs = bench.parse_micro_json(text)
        self.assertEqual(errs, {})
        self.assertAlmostEqual(vals["BM_MallocFree/64"][0], 5.0)
        self.assertEqual(vals["BM_MallocFree/64"][1], 1)
        self.assertAlmostEqual(vals["BM_Batch/n:1000"][0], 8.0)
        self.assertAlmostEqual(vals["BM_NoItems"][0], 2.0e6)
        self.assertEqual(vals["BM_T/threads:4"][1], 4)
        self.assertEqual(vals["BM_Named/threads:2"][1], 2)

    def test_micro_aggregates_repetitions_errors(self):
        text = self.micro_doc([
            {"name": "BM_A", "run_name": "BM_A", "run_type": "iteration", "cpu_time": 3.0,
             "time_unit": "ns"},
            {"name": "BM_A", "run_name": "BM_A", "run_type": "iteration", "cpu_time": 1.0,
             "time_unit": "ns"},
            {"name": "BM_A", "run_name": "BM_A", "run_type": "iteration", "cpu_time": 2.0,
             "time_unit": "ns"},
            {"name": "BM_A_mean", "run_name": "BM_A", "run_type": "aggregate", "cpu_time": 99.0,
             "time_unit": "ns", "aggregate_name": "mean"},
            {"name": "BM_B", "run_type": "iteration", "error_occurred": True,
             "error_message": "malloc returned NULL", "cpu_time": 0, "time_unit": "ns"},
        ])
        vals, errs = bench.parse_micro_json(text)
        self.assertEqual(vals, {"BM_A": (2.0, 1)})
        self.assertEqual(errs, {"BM_B": "malloc returned NULL"})

    def test_micro_garbage(self):
        for text in ("", "not json", "[]", '{"benchmarks": 3}',
                     '{"benchmarks": [{"nom": 1}]}',
                     '{"benchmarks": [{"name": "x", "cpu_time": 1, "time_unit": "fortnights"}]}'):
            with self.subTest(text=text):
                with self.assertRaises(ValueError):
                    bench.parse_micro_json(text)

    def test_time_report(self):
        self.assertEqual(bench.parse_time_report("BENCH_PEAK_RSS_KB=1234\n"), (1234, 0))
        self.assertEqual(bench.parse_time_report(
            "Command terminated by signal 11\nBENCH_PEAK_RSS_KB=99\n"), (99, 11))
        self.assertEqual(bench.parse_time_report(""), (None, 0))

    def test_describe_status(self):
        self.assertEqual(bench.describe_status(3, 0), "exit status 3")
        self.assertEqual(bench.describe_status(None, 11), "killed by SIGSEGV")

    def test_evaluate(self):
        case = bench.make_cases("quick", ["larson/t1"])[0]
        alloc = bench.Allocator("jemalloc", "", "/x/libjemalloc.so.2")

        def run(**kw):
            p = bench.ProcResult()
            p.exit_code = 0
            for k, v in kw.items():
                setattr(p, k, v)
            j = bench.Job(1, case, alloc, 1)
            bench.evaluate(j, p)
            return j

        ok = run(stdout="Throughput = 7 operations per second\n")
        self.assertIsNone(ok.error)
        self.assertEqual(ok.value, 7)
        self.assertIn("no 'Throughput", run(stdout="hello\n").error)
        self.assertEqual(run(exit_code=2).error, "exit status 2")
        self.assertEqual(run(exit_code=None, term_signal=6).error, "killed by SIGABRT")
        self.assertIn("timed out", run(timed_out=True).error)
        self.assertIn("LD_PRELOAD was not applied", run(
            stdout="Throughput = 7 operations per second\n",
            stderr="ERROR: ld.so: object '/x/libjemalloc.so.2' from LD_PRELOAD cannot be "
                   "preloaded (cannot open shared object file): ignored.\n").error)


class StubInputs:
    """FootprintInputs' interface without the programs: expectations only."""

    def __init__(self, expect, errors=None):
        self.dir = "/nonexistent-footprint-inputs"
        self.expect = expect
        self.errors = errors or {}

    def argv(self, case):
        return list(case.argv_tail)


def footprint_case(program):
    return bench.make_cases("quick", ["footprint/" + program])[0]


class FootprintTest(unittest.TestCase):
    def test_python_checks(self):
        check = bench.check_footprint_output
        self.assertIsNone(check("python-pass", "", ""))
        self.assertIn("printed 'oops'", check("python-pass", "oops", ""))
        out = bench.FOOTPRINT_IMPORTS_OUT
        self.assertIsNone(check("python-imports", out, out))
        self.assertIsNotNone(check("python-imports", out.replace("3.3", "3.4"), out))
        self.assertIsNotNone(check("python-imports", "", out))

    def git_expect(self, n):
        return {"subjects": [bench.git_commit_subject(i) for i in range(n, 0, -1)],
                "added_lines": 2 * n}

    def test_git_log_check(self):
        want = self.git_expect(3)
        good = "".join("%07x %s\n" % (0xabc000 + i, s) for i, s in enumerate(want["subjects"]))
        self.assertIsNone(bench.check_footprint_output("git-log", good, want))
        lines = good.splitlines(True)
        self.assertIn("2 lines, expected 3",
                      bench.check_footprint_output("git-log", "".join(lines[:2]), want))
        swapped = lines[1] + lines[0] + lines[2]
        self.assertIn("line 1", bench.check_footprint_output("git-log", swapped, want))
        self.assertIn("line 2", bench.check_footprint_output(
            "git-log", lines[0] + "zzzzzzz " + want["subjects"][1] + "\n" + lines[2], want))

    def git_log_p(self, subjects, added=2):
        out = []
        for s in subjects:
            out += ["commit " + "a" * 40, "Author: B <b@x>", "Date:   now", "", "    " + s, "",
                    "diff --git a/f b/f", "--- a/f", "+++ b/f", "@@ -1 +1,3 @@", " old"]
            out += ["+line %d" % k for k in range(added)]
        return "\n".join(out) + "\n"

    def test_git_log_p_check(self):
        want = self.git_expect(3)
        check = bench.check_footprint_output
        self.assertIsNone(check("git-log-p", self.git_log_p(want["subjects"]), want))
        self.assertIn("shows 2 commits, expected 3",
                      check("git-log-p", self.git_log_p(want["subjects"][:2]), want))
        self.assertIn("shows 9 added lines, expected 6",
                      check("git-log-p", self.git_log_p(want["subjects"], 3), want))
        self.assertIn("commit messages", check(
            "git-log-p", self.git_log_p(list(reversed(want["subjects"]))), want))
        want["sha256"] = bench.digest(self.git_log_p(want["subjects"]))
        self.assertIsNone(check("git-log-p", self.git_log_p(want["subjects"]), want))
        self.assertIn("differs from glibc's reference run", check(
            "git-log-p", self.git_log_p(want["subjects"]).replace("old", "olf"), want))

    def test_ls_check(self):
        text = "/usr/include:\na.h\nb.h\n"
        want = {"lines": 3, "sha256": bench.digest(text)}
        self.assertIsNone(bench.check_footprint_output("ls-R", text, want))
        self.assertIn("2 lines, expected 3",
                      bench.check_footprint_output("ls-R", "/usr/include:\na.h\n", want))
        self.assertIn("differs", bench.check_footprint_output("ls-R", text.replace("b", "c"), want))

    def test_sort_check(self):
        lines = bench.sort_input_lines(500, 7)
        self.assertEqual(lines, bench.sort_input_lines(500, 7))  # seeded
        self.assertTrue(all(1 <= len(l) <= 80 and set(l) <= set(bench.SORT_ALPHABET)
                            for l in lines))
        ordered = sorted(lines)
        want = {"lines": 500, "sha256": bench.digest("".join(l + "\n" for l in ordered))}
        check = bench.check_footprint_output
        self.assertIsNone(check("sort", "".join(l + "\n" for l in ordered), want))
        self.assertIn("499 lines, expected 500",
                      check("sort", "".join(l + "\n" for l in ordered[1:]), want))
        unsorted = ordered[:]
        unsorted[10], unsorted[20] = unsorted[20], unsorted[10]
        if unsorted != ordered:
            self.assertIn("not in order", check("sort", "".join(l + "\n" for l in unsorted), want))
        changed = ordered[:-1] + [ordered[-1] + "z"]
        self.assertIn("not the input's lines",
                      check("sort", "".join(l + "\n" for l in changed), want))
        with self.assertRaises(ValueError):
            check("emacs", "", {})

    def test_env(self):
        with mock.patch.dict(os.environ, {"GIT_DIR": "/elsewhere", "LD_PRELOAD": "/old.so",
                                          "LANG": "de_DE.UTF-8"}):
            env = bench.footprint_env("/x/lib.so", "git-log")
            self.assertEqual(env["LD_PRELOAD"], "/x/lib.so")
            self.assertEqual(env["LC_ALL"], "C")
            self.assertNotIn("GIT_DIR", env)
            self.assertEqual(env["GIT_CONFIG_GLOBAL"], os.devnull)
            env = bench.footprint_env(None, "sort")
            self.assertNotIn("LD_PRELOAD", env)
            self.assertEqual(env["GIT_DIR"], "/elsewhere")
            self.assertEqual(env["LC_ALL"], "C")

    def test_evaluate(self):
        case = footprint_case("python-pass")
        alloc = bench.Allocator("mimalloc", "", "/x/libmimalloc.so.2")
        inputs = StubInputs({"python-pass": ""})

        def run(inputs=inputs, **kw):
            p = bench.ProcResult()
            p.exit_code, p.peak_rss_kb = 0, 7868
            for k, v in kw.items():
                setattr(p, k, v)
            j = bench.Job(1, case, alloc, 1)
            bench.evaluate(j, p, inputs=inputs)
            return j

        ok = run()
        self.assertIsNone(ok.error)
        self.assertEqual(ok.value, 7868)
        self.assertEqual(run(stdout="Traceback\n").error, "wrong output: printed 'Traceback\\n', "
                         "expected ''")
        self.assertEqual(run(exit_code=1).error, "exit status 1")
        self.assertEqual(run(exit_code=None, term_signal=11).error, "killed by SIGSEGV")
        self.assertEqual(run(peak_rss_kb=0).error, "no peak RSS")
        self.assertIn("no expected output", run(inputs=None).error)
        # A run whose inputs could not be made fails with the reason, unrun.
        j = bench.Job(1, case, alloc, 1)
        bench.run_job(j, None, 1, StubInputs({}, {"python-pass": "cannot prepare its input: x"}))
        self.assertEqual(j.error, "cannot prepare its input: x")
        self.assertIsNone(j.proc)

    def footprint_groups(self, kib):
        case = footprint_case("sort")
        allocs = [bench.Allocator(n, v, None) for n, v, _, _ in bench.ALLOCATORS
              if n in bench.DEFAULT_ALLOCATORS]
        inputs = StubInputs({"sort": {"lines": 1, "sha256": bench.digest("a\n")}})
        jobs = []
        for r in range(3):
            for a in allocs:
                j = bench.Job(len(jobs) + 1, case, a, r + 1)
                p = bench.ProcResult()
                p.exit_code, p.wall_s, p.cpu_s = 0, 0.05, 0.04
                p.stdout = "a\n" if a.name != "scudo" else "b\n"  # scudo "corrupts"
                p.peak_rss_kb = kib[a.name] + 10 * r
                bench.evaluate(j, p, inputs=inputs)
                jobs.append(j)
        groups, failures = bench.aggregate(jobs, [case], allocs)
        return case, groups, failures

    def test_table_summary_and_json(self):
        kib = {"hakmem": 8000, "hakmem-nofastcache": 9000, "hakmem-hardened": 12000,
               "glibc": 10000, "mimalloc": 9600, "jemalloc": 11000, "tcmalloc": 16000,
               "scudo": 100}
        case, groups, failures = self.footprint_groups(kib)
        self.assertEqual(len(failures), 3)  # scudo's wrong output fails; it does not win
        text = bench.group_table(groups[0][0], case, groups[0][2], 3)
        lines = text.splitlines()
        self.assertIn("lower is better", lines[0])
        self.assertIn("peak RSS in KiB", lines[0])
        self.assertIn("sort lines.txt", lines[0])
        self.assertIn("wall s", lines[1])
        self.assertNotIn("RSS MiB", lines[1])
        rows = {l.split()[0]: l for l in lines[3:3 + len(kib)]}
        self.assertIn("8,010", rows["hakmem"])            # the median of 8000, 8010, 8020
        self.assertIn("8,000..8,020", rows["hakmem"])
        self.assertIn("1.25x", rows["hakmem"])            # glibc 10010 / hakmem 8010
        self.assertIn("1.20x", rows["hakmem"])            # best peer mimalloc 9610 / 8010
        self.assertIn("0.60x", rows["tcmalloc"])          # 9610 / 16010
        self.assertIn("FAILED", rows["scudo"])
        self.assertIn("best peer: mimalloc (9,610 KiB)", text)
        self.assertIn("scudo: all 3 run(s) failed: wrong output: sort:", text)
        summary = bench.summary_table(groups)
        self.assertIn("less peak RSS", summary)
        row = [l for l in summary.splitlines() if l.startswith("footprint sort")][0]
        self.assertIn("mimalloc", row)
        self.assertIn("1.20x", row)
        self.assertIn("geometric mean (footprint)", summary)
        self.assertNotIn("geometric mean (speed)", summary)
        # With a throughput case, the two geometric means are apart.
        _, _, ms = fake_measurements()
        both = bench.summary_table([("larson t=2", ms[0].case, ms)] + groups)
        self.assertIn("geometric mean (speed)", both)
        self.assertIn("geometric mean (footprint)", both)
        results = bench.results_json(groups)
        self.assertEqual(len(results), len(kib) - 1)
        h = [r for r in results if r["allocator"] == "hakmem" and r["variant"] == "fastcache"][0]
        self.assertEqual((h["benchmark"], h["metric"], h["unit"], h["higher_is_better"]),
                         ("footprint/sort", "peak_rss_kb", "KiB", False))
        self.assertEqual((h["median"], h["min"], h["max"]), (8010, 8000, 8020))
        self.assertIsNone(h["peak_rss_kb"])
        self.assertEqual(h["params"], case.params)
        doc = bench.make_document(JsonTest.META, JsonTest.MACHINE, "quick", 3, "release", results,
                                  bench.failures_json([]), [])
        self.assertEqual(bench.validate_document(doc), [])

    def test_real_programs_with_glibc(self):
        """The inputs, the programs and their checks, for real (no preload)."""
        programs = list(bench.FOOTPRINT_PROGRAMS)
        for c in bench.make_cases("quick", ["footprint/" + p for p in programs]):
            if not os.access(c.argv_tail[0], os.X_OK):
                self.skipTest("%s is not installed" % c.argv_tail[0])
        inputs = bench.FootprintInputs(programs, TMP_ROOT)
        try:
            self.assertEqual(inputs.errors, {})
            self.assertGreater(os.path.getsize(os.path.join(inputs.dir, "lines.txt")), 2 << 20)
            glibc = bench.Allocator("glibc", "", None)
            for c in bench.make_cases("quick", ["footprint/" + p for p in programs]):
                with self.subTest(program=c.program):
                    argv = inputs.argv(c)
                    self.assertNotIn(bench.FOOTPRINT_WORK, " ".join(argv))
                    j = bench.Job(1, c, glibc, 1)
                    bench.run_job(j, None, 1, inputs)
                    self.assertIsNone(j.error, j.proc.stderr if j.proc else "")
                    self.assertGreater(j.value, 100)
                    # The same output, altered, fails.
                    bad = j.proc.stdout[:-2] + "\n" if j.proc.stdout else "x\n"
                    self.assertIsNotNone(bench.check_footprint_output(
                        c.program, bad, inputs.expect[c.program]))
        finally:
            inputs.close()
        self.assertFalse(os.path.exists(inputs.dir))

    def test_missing_program_fails_its_runs(self):
        with mock.patch.object(bench, "GIT_BIN", "/nonexistent/git"):
            inputs = bench.FootprintInputs(["git-log", "python-pass"], TMP_ROOT)
        try:
            self.assertIn("cannot prepare its input", inputs.errors["git-log"])
            self.assertNotIn("python-pass", inputs.errors)
        finally:
            inputs.close()


# --------------------------------------------------------------------------
# The programs suite (tools/bench_programs.py, tools/programs/).

# Sizes small enough for a unit test: every program runs for real, briefly.
TINY_SIZES = {"redis_requests": 300, "redis_pipelined_requests": 2000, "sqlite_rows": 300,
              "python_scale": 1, "gcc_functions": 3, "git_commits": 12, "git_lines": 40,
              "git_gc_window": 10, "perl_words": 3000}

# redis-benchmark 7.0.15 --csv, as printed here.
REDIS7_CSV = """\
"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"SET","47961.63","0.536","0.152","0.527","0.591","0.727","4.119"
"GET","49875.31","0.510","0.248","0.511","0.559","0.599","1.711"
"LPUSH","49019.61","0.519","0.136","0.503","0.551","0.703","9.543"
"LPUSH (needed to benchmark LRANGE)","49875.31","0.513","0.264","0.511","0.559","0.599","3.207"
"LRANGE_100 (first 100 elements)","43572.98","0.588","0.240","0.583","0.639","0.791","2.071"
"""


def programs_installed():
    return all(os.access(b, os.X_OK) for bins in bench_programs.BINS.values() for b in bins)


class StubProgramInputs:
    """ProgramInputs' interface without the programs: expectations only."""

    def __init__(self, expect, errors=None):
        self.dir = "/nonexistent-programs-inputs"
        self.mode = "quick"
        self.expect = expect
        self.errors = errors or {}


def programs_case(program, mode="quick"):
    return bench.make_cases(mode, ["programs/" + program])[0]


class ProgramsCaseTest(unittest.TestCase):
    def test_case_ids_and_selection(self):
        ids = ["programs/" + p for p in bench_programs.PROGRAMS]
        self.assertEqual(ids, ["programs/redis", "programs/sqlite", "programs/python",
                               "programs/gcc", "programs/git-log-p", "programs/git-blame",
                               "programs/git-gc", "programs/perl"])
        self.assertEqual(bench.all_case_ids()[-len(ids):], ids)
        self.assertEqual(bench.parse_args(["--bench", "programs"]).bench, ids)
        self.assertEqual(bench.parse_args(["--bench", "programs/perl,larson/t1"]).bench,
                         ["larson/t1", "programs/perl"])
        self.assertEqual(bench.parse_args(["--quick"]).bench[-len(ids):], ids)  # in "all"
        code, err = parse_exit(["--bench", "programs/bogus"])
        self.assertEqual(code, 2)
        self.assertIn("unknown benchmark 'programs/bogus'", err)

    def test_cases(self):
        for mode in ("quick", "full"):
            cases = bench.make_cases(mode, bench.all_case_ids())
            progs = [c for c in cases if c.kind == "programs"]
            self.assertEqual([c.program for c in progs], list(bench_programs.PROGRAMS))
            for c in progs:
                with self.subTest(mode=mode, program=c.program):
                    self.assertEqual(c.benchmark, c.id)
                    self.assertEqual(c.threads, 1)
                    self.assertTrue(0 < len(c.params) <= 200)
                    self.assertEqual(c.timeout_s, bench_programs.PROGRAM_TIMEOUT_S[mode])
                    if c.program == "redis":
                        self.assertIsNone(c.argv_tail)
                        self.assertTrue(c.higher_is_better)
                        self.assertEqual(c.metric, ("requests_per_sec", "req/s"))
                    else:
                        self.assertTrue(os.path.isabs(c.argv_tail[0]))
                        self.assertFalse(c.higher_is_better)
                        self.assertEqual(c.metric, ("wall_s", "s"))
        # --full runs every workload longer than --quick.
        quick, full = bench_programs.SIZES["quick"], bench_programs.SIZES["full"]
        self.assertEqual(sorted(quick), sorted(full))
        for k in quick:
            self.assertGreater(full[k], quick[k], k)
        self.assertIn("-n 5000", programs_case("redis").params)
        self.assertIn("-P 16", programs_case("redis").params)
        self.assertIn("300000 rows", programs_case("sqlite", "full").params)
        # Debian's binaries, and the suite's own scripts, which exist.
        for c in bench.make_cases("quick", bench.parse_bench_list("programs")):
            for a in c.argv_tail or []:
                if a.startswith(bench_programs.PROGRAMS_DIR):
                    self.assertTrue(os.path.isfile(a), a)
        self.assertEqual(programs_case("python").argv_tail[0], "/usr/bin/python3")

    def test_figure_and_benchmark_names(self):
        self.assertEqual(bench_programs.figure_names("redis"),
                         ["SET", "GET", "LPUSH", "LRANGE_100",
                          "SET-P16", "GET-P16", "LPUSH-P16", "LRANGE_100-P16"])
        self.assertEqual(bench_programs.figure_names("sqlite"), [""])
        self.assertEqual(bench_programs.benchmark_name("redis", "GET-P16"),
                         "programs/redis/GET-P16")
        self.assertEqual(bench_programs.benchmark_name("git-gc", ""), "programs/git-gc")

    def test_env(self):
        with mock.patch.dict(os.environ, {"GIT_DIR": "/elsewhere", "PYTHONPATH": "/x",
                                          "PYTHONHASHSEED": "random", "LD_PRELOAD": "/y.so"}):
            env = bench_programs.program_env(bench, "/lib/h.so", "git-gc")
            self.assertEqual(env["LD_PRELOAD"], "/lib/h.so")
            self.assertNotIn("GIT_DIR", env)
            self.assertEqual(env["GIT_CONFIG_GLOBAL"], os.devnull)
            self.assertEqual(env["LC_ALL"], "C")
            env = bench_programs.program_env(bench, None, "python")
            self.assertNotIn("LD_PRELOAD", env)
            self.assertNotIn("PYTHONPATH", env)
            self.assertEqual(env["PYTHONHASHSEED"], "0")
            self.assertEqual(bench_programs.program_env(bench, None, "perl")["GIT_DIR"],
                             "/elsewhere")


class RedisCsvTest(unittest.TestCase):
    def test_redis7(self):
        self.assertEqual(bench_programs.parse_redis_csv(REDIS7_CSV),
                         {"SET": 47961.63, "GET": 49875.31, "LPUSH": 49019.61,
                          "LRANGE_100": 43572.98})

    def test_without_header(self):
        old = '"SET","81037.28"\n"GET","84317.03"\n\n"LRANGE_100 (first 100 elements)","30000"\n'
        self.assertEqual(bench_programs.parse_redis_csv(old),
                         {"SET": 81037.28, "GET": 84317.03, "LRANGE_100": 30000.0})

    def test_rps_column_found_by_name(self):
        text = '"test","avg_latency_ms","rps"\n"GET","0.5","1234.5"\n'
        self.assertEqual(bench_programs.parse_redis_csv(text), {"GET": 1234.5})

    def test_garbage(self):
        bad = {
            "": "no CSV rows",
            '"test","avg_latency_ms"\n"SET","0.5"\n': "no rps column",
            '"SET","fast"\n': "not a number",
            '"SET","0"\n': "rps of SET",
            '"SET","inf"\n': "rps of SET",
            '"SET","5"\n"SET","6"\n': "appears twice",
            '"SET"\n': "short CSV row",
        }
        for text, why in bad.items():
            with self.subTest(text=text):
                with self.assertRaises(ValueError) as cm:
                    bench_programs.parse_redis_csv(text)
                self.assertIn(why, str(cm.exception))

    def test_data_set_check(self):
        commands, data = bench_programs.redis_data_set()
        self.assertEqual(len(commands), len(data))
        self.assertEqual(bench_programs.redis_data_set()[1], data)  # deterministic

        class FakeClient:
            def __init__(self, store):
                self.store = store

            def call(self, *args):
                assert args[0] == "MGET"
                return [self.store.get(k) for k in args[1:]]

            def pipeline(self, commands):
                out = []
                for c in commands:
                    v = self.store.get(c[1])
                    out.append([x for kv in v.items() for x in kv] if c[0] == "HGETALL" else v)
                return out

        store = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
        self.assertIsNone(bench_programs.redis_check_data_set(FakeClient(store), data))
        bad = dict(store, **{"ds:str:7": data["ds:str:7"][:-1] + "#"})
        n = len(data["ds:str:7"])
        self.assertIn("ds:str:7 differs from what was stored at byte %d of %d" % (n - 1, n),
                      bench_programs.redis_check_data_set(FakeClient(bad), data))
        bad = dict(store, **{"ds:str:8": None})
        self.assertIn("ds:str:8 holds None", bench_programs.redis_check_data_set(FakeClient(bad), data))
        h = dict(store["ds:hash:3"], f9="corrupted")
        bad = dict(store, **{"ds:hash:3": h})
        self.assertIn("ds:hash:3 does not hold",
                      bench_programs.redis_check_data_set(FakeClient(bad), data))
        bad = dict(store, **{"ds:list:0": store["ds:list:0"][::-1]})
        self.assertIn("ds:list:0", bench_programs.redis_check_data_set(FakeClient(bad), data))

    def test_resp_encoding(self):
        self.assertEqual(bench_programs.Redis.encode(("SET", "k", "v\u00e9")),
                         b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\xc3\xa9\r\n")


class WorkloadsTest(unittest.TestCase):
    def test_deterministic(self):
        self.assertEqual(workloads.sqlite_data(50, 1), workloads.sqlite_data(50, 1))
        self.assertNotEqual(workloads.sqlite_data(50, 1), workloads.sqlite_data(50, 2))
        self.assertEqual(workloads.c_source(4), workloads.c_source(4))
        self.assertEqual(workloads.words_text(500, 50, 3), workloads.words_text(500, 50, 3))
        self.assertEqual(workloads.git_history(5, 20, 3, 2, 2, 9), workloads.git_history(5, 20, 3, 2, 2, 9))

    def test_c_expected_follows_the_source(self):
        # The source's constants are the ones the oracle uses.
        src = workloads.c_source(2)
        c = workloads._c_consts(1)
        self.assertIn("v.a = v.a * %dull + (v.b >> %d);" % (c["mul"], c["s1"]), src)
        self.assertIn("for (int k = 0; k < %d; k++) {" % c["loops"], src)
        self.assertRegex(workloads.c_expected(2), r"^[0-9]+\n$")
        self.assertNotEqual(workloads.c_expected(2), workloads.c_expected(3))

    def test_words_expected(self):
        text = "b a b\nc b\n"
        out = workloads.words_expected(text).splitlines()
        self.assertEqual(out[0], "words 5 distinct 3 pairs 3")
        self.assertEqual(out[1], "word b %d %d" % (3, ((1 * 31 + 1) * 31 + 2) % workloads.WORDS_MOD))
        self.assertIn("pair a b 1", out)
        self.assertTrue(out[-1].startswith("check "))

    def test_git_history_facts(self):
        stream, facts = workloads.git_history(6, 30, 4, 2, 2, 5)
        self.assertEqual(facts["subjects"], ["commit %d" % i for i in range(6, 0, -1)])
        self.assertEqual(facts["added_lines"], 30 + 5 * 4 + 6 * 2)
        self.assertEqual(len(facts["blame"]), 30)
        self.assertEqual(sum(1 for c, _ in facts["blame"] if c > 1), len(
            set(j for j, (c, _) in enumerate(facts["blame"]) if c > 1)))
        for c, text in facts["blame"]:
            self.assertIn(" r%d " % c, text + " ")
        self.assertEqual(stream.count("commit refs/heads/main\n"), 6)

    def blame_output(self, facts, hashes):
        return "".join("%s %4d) %s\n" % (hashes[c], i + 1, t)
                       for i, (c, t) in enumerate(facts["blame"]))

    def test_blame_check(self):
        _, facts = workloads.git_history(6, 30, 4, 2, 2, 5)
        hashes = {i: "%040x" % (0xabc00 + i) for i in range(1, 7)}
        expect = dict(facts, commit_of={h: i for i, h in hashes.items()})
        good = self.blame_output(facts, hashes)
        self.assertIsNone(bench_programs.check_git_blame(good, expect))
        # A line given to another commit, changed text, a lost line: each fails.
        lines = good.splitlines(True)
        c0 = facts["blame"][0][0]
        other = hashes[c0 % 6 + 1]
        wrong = [lines[0].replace(hashes[c0], other)] + lines[1:]
        self.assertIn("line 1 is given to commit", bench_programs.check_git_blame("".join(wrong), expect))
        changed = lines[:2] + [lines[2].replace("L00002", "L0000X")] + lines[3:]
        self.assertIn("line 3 is", bench_programs.check_git_blame("".join(changed), expect))
        self.assertIn("29 lines, expected 30",
                      bench_programs.check_git_blame("".join(lines[:-1]), expect))

    def test_log_p_check(self):
        expect = {"subjects": ["commit 2", "commit 1"], "added_lines": 3}
        good = ("commit %s\nAuthor: B\n\n    commit 2\n\n+++ b/x\n+a\n"
                "commit %s\nAuthor: B\n\n    commit 1\n\n+++ b/x\n+b\n+c\n" % ("1" * 40, "2" * 40))
        self.assertIsNone(bench_programs.check_git_log_p(good, expect))
        self.assertIn("2 added lines", bench_programs.check_git_log_p(good.replace("+c\n", ""), expect))
        self.assertIn("1 commits", bench_programs.check_git_log_p(good[good.index("commit 2222"):], expect))
        expect["sha256"] = bench_programs.digest(good)
        self.assertIn("glibc's reference", bench_programs.check_git_log_p(good.replace("+a", "+A"), expect))

    def test_text_checks(self):
        inputs = StubProgramInputs({"sqlite": "q1|3|4\nq2|t00|1|5\n", "perl": "words 1\n",
                                    "python": "objects 1\n"})
        check = bench_programs.check
        self.assertIsNone(check("sqlite", "q1|3|4\nq2|t00|1|5\n", inputs))
        self.assertEqual(check("sqlite", "q1|3|4\nq2|t00|1|6\n", inputs),
                         "sqlite: line 2 is 'q2|t00|1|6', expected 'q2|t00|1|5'")
        self.assertEqual(check("sqlite", "q1|3|4\n", inputs), "sqlite: 1 lines, expected 2")
        self.assertIsNotNone(check("perl", "words 2\n", inputs))
        self.assertIsNotNone(check("python", "", inputs))
        self.assertIn("no expected output", check("gcc", "", inputs))


@unittest.skipUnless(programs_installed(), "needs redis-server, redis-benchmark, sqlite3, gcc, "
                                           "git and perl")
class ProgramsRealTest(unittest.TestCase):
    """The inputs, the programs and their checks, for real, at tiny sizes."""

    def setUp(self):
        self.sizes = mock.patch.dict(bench_programs.SIZES["quick"], TINY_SIZES)
        self.sizes.start()
        self.inputs = bench_programs.ProgramInputs(bench, bench_programs.PROGRAMS, "quick", TMP_ROOT)

    def tearDown(self):
        self.inputs.close()
        self.sizes.stop()

    def test_every_program_with_glibc_and_corrupted_outputs(self):
        inputs = self.inputs
        self.assertEqual(inputs.errors, {})
        glibc = bench.Allocator("glibc", "", None)
        ran = []
        for c in bench.make_cases("quick", bench.parse_bench_list("programs")):
            ran.append(c.program)
            with self.subTest(program=c.program):
                j = bench.Job(1, c, glibc, 1)
                bench.run_job(j, None, 1, None, inputs)
                self.assertIsNone(j.error, j.proc.stderr[-2000:] if j.proc else "")
                self.assertEqual(sorted(j.figures), sorted(bench_programs.figure_names(c.program)))
                self.assertTrue(all(v > 0 for v in j.figures.values()))
                self.assertGreater(j.proc.peak_rss_kb, 1000)
                if c.program in ("sqlite", "python", "perl", "git-log-p", "git-blame"):
                    # The same output with one byte changed fails its check.
                    out = j.proc.stdout
                    i = len(out) // 2
                    bad = out[:i] + ("#" if out[i] != "#" else "$") + out[i + 1:]
                    self.assertIsNotNone(bench_programs.check(c.program, bad, inputs))
        self.assertEqual(ran, list(bench_programs.PROGRAMS))
        # gcc: a program that prints something else fails; so does another build.
        with open(inputs.path("gcc-out", "prog"), "r+b") as f:
            f.seek(0, 2)
            f.write(b"\0")
        self.assertIn("differs from glibc's build", bench_programs.check("gcc", "", inputs))
        self.assertIn("printed", inputs.check_gcc({"output": "1\n"}))
        # git gc: a repository whose objects changed fails.
        self.assertIn("differ", inputs.check_git_gc({"objects_sha256": "0" * 64}))
        self.assertFalse(os.path.exists(inputs.path("redis-does-not-exist")))

    def test_a_corrupting_allocator_fails_instead_of_winning(self):
        """A run whose output is wrong fails with the reason and gives no figure."""
        inputs = self.inputs
        inputs.expect["sqlite"] = inputs.expect["sqlite"].replace("q1|", "q1|9", 1)
        inputs.expect["perl"] = inputs.expect["perl"] + "extra\n"
        hakmem = bench.Allocator("hakmem", "fastcache", None)
        for program in ("sqlite", "perl"):
            j = bench.Job(1, programs_case(program), hakmem, 1)
            bench.run_job(j, None, 1, None, inputs)
            self.assertTrue(j.error.startswith("wrong output: %s:" % program), j.error)
            self.assertEqual(j.figures, {})
        groups, failures = bench.aggregate([j], [j.case], [hakmem])
        self.assertEqual(len(failures), 1)
        self.assertFalse(groups[0][2][0].ok)
        self.assertEqual(bench.results_json(groups), [])

    def test_glibc_row_of_redis_is_glibc(self):
        """Debian's redis-server links jemalloc: glibc's run preloads libc itself."""
        seen = {}
        real_wrap = bench.wrap_with_time

        def fake_wrap(argv, env, report):
            seen["preload"] = env.get("LD_PRELOAD")
            return real_wrap(argv, env, report)

        with mock.patch.object(bench, "wrap_with_time", fake_wrap):
            res, figures, error = bench_programs.run(bench, "redis", None, self.inputs, 60)
        self.assertIsNone(error)
        self.assertEqual(res.exit_code, 0)
        self.assertEqual(seen["preload"], bench_programs.LIBC)


class ProgramsEvaluateTest(unittest.TestCase):
    def run_job(self, case, alloc, figures=None, problem=None, **kw):
        p = bench.ProcResult()
        p.exit_code, p.wall_s, p.cpu_s, p.peak_rss_kb = 0, 1.5, 1.2, 20000
        for k, v in kw.items():
            setattr(p, k, v)
        j = bench.Job(1, case, alloc, 1)
        bench.evaluate(j, p, programs=(figures, problem))
        return j

    def test_evaluate(self):
        case = programs_case("sqlite")
        alloc = bench.Allocator("hakmem", "fastcache", "/x/libhakmem.so")
        ok = self.run_job(case, alloc, {"": 1.5})
        self.assertIsNone(ok.error)
        self.assertEqual(ok.figures, {"": 1.5})
        self.assertEqual(self.run_job(case, alloc, None, "sqlite: line 2 is 'x'").error,
                         "wrong output: sqlite: line 2 is 'x'")
        # The process's own failure is reported first.
        self.assertEqual(self.run_job(case, alloc, None, "x", exit_code=None,
                                      term_signal=11).error, "killed by SIGSEGV")
        self.assertEqual(self.run_job(case, alloc, None, None, exit_code=1).error, "exit status 1")
        self.assertEqual(self.run_job(case, alloc, {}).error, "no figures")
        # Inputs that could not be made fail the run with the reason.
        j = bench.Job(1, case, alloc, 1)
        bench.run_job(j, None, 1, None, StubProgramInputs({}, {"sqlite": "cannot prepare its input: x"}))
        self.assertEqual(j.error, "cannot prepare its input: x")

    def test_tables_summary_and_json(self):
        allocs = [bench.Allocator(n, v, None) for n, v, _, _ in bench.ALLOCATORS
              if n in bench.DEFAULT_ALLOCATORS]
        redis, sqlite = programs_case("redis"), programs_case("sqlite")
        speed = {"hakmem": 1.0, "hakmem-nofastcache": 1.1, "hakmem-hardened": 1.3, "glibc": 2.0,
                 "mimalloc": 1.25, "jemalloc": 1.6, "tcmalloc": 1.4, "scudo": 0.5}
        jobs = []
        for r in range(3):
            for a in allocs:
                s = speed[a.name]
                rss = int(40000 * s) + r
                jobs.append(self.run_job(redis, a, {f: 100000.0 / s + r for f in
                                                    bench_programs.figure_names("redis")},
                                         peak_rss_kb=rss))
                if a.name == "scudo":  # its output was wrong: it fails, it does not win
                    jobs.append(self.run_job(sqlite, a, None, "sqlite: line 1 is 'q1|0'"))
                else:
                    jobs.append(self.run_job(sqlite, a, {"": s + r / 100.0}, wall_s=s,
                                             peak_rss_kb=rss))
        groups, failures = bench.aggregate(jobs, [redis, sqlite], allocs)
        self.assertEqual(len(failures), 3)
        self.assertEqual([g[0] for g in groups],
                         ["programs redis/" + f for f in bench_programs.figure_names("redis")]
                         + ["programs sqlite"])
        text = bench.group_table(groups[-1][0], sqlite, groups[-1][2], 3)
        lines = text.splitlines()
        self.assertIn("s, lower is better; 3 rounds", lines[0])
        self.assertIn("sqlite3 :memory:", lines[0])
        self.assertIn("RSS MiB", lines[1])
        rows = {l.split()[0]: l for l in lines[3:3 + len(allocs)]}
        self.assertIn("1.01", rows["hakmem"])             # the median of 1.00, 1.01, 1.02
        self.assertIn("1.99x", rows["hakmem"])            # glibc 2.01 / 1.01
        self.assertIn("1.25x", rows["hakmem"])            # best peer mimalloc 1.26 / 1.01
        self.assertIn("FAILED", rows["scudo"])
        self.assertIn("best peer: mimalloc (1.26 s)", text)
        self.assertIn("scudo: all 3 run(s) failed: wrong output: sqlite:", text)
        text = bench.group_table(groups[0][0], redis, groups[0][2], 3)
        self.assertIn("req/s, higher is better", text.splitlines()[0])
        self.assertIn("best peer: mimalloc", text)
        summary = bench.summary_table(groups)
        self.assertIn("geometric mean (programs)", summary)
        self.assertIn("geometric mean (programs peak RSS)", summary)
        self.assertNotIn("geometric mean (speed)", summary)
        rss_row = [l for l in summary.splitlines() if "programs peak RSS" in l][0]
        self.assertIn("1.25x", rss_row)                   # lowest peer mimalloc 50001 / 40001
        self.assertIn("2.00x", rss_row)                   # glibc 80001 / 40001
        results = bench.results_json(groups)
        self.assertEqual(len(results), 8 * len(allocs) + len(allocs) - 1)
        by = {(r["benchmark"], r["allocator"], r["variant"]): r for r in results}
        h = by[("programs/redis/LPUSH-P16", "hakmem", "fastcache")]
        self.assertEqual((h["metric"], h["unit"], h["higher_is_better"]),
                         ("requests_per_sec", "req/s", True))
        self.assertEqual(h["median"], 100001.0)
        self.assertEqual(h["peak_rss_kb"], 40001)
        h = by[("programs/sqlite", "glibc", "")]
        self.assertEqual((h["metric"], h["unit"], h["higher_is_better"], h["values"]),
                         ("wall_s", "s", False, [2.0, 2.01, 2.02]))
        doc = bench.make_document(JsonTest.META, JsonTest.MACHINE, "quick", 3, "release", results,
                                  bench.failures_json(jobs), [])
        self.assertEqual(bench.validate_document(doc), [])
        self.assertEqual({f["benchmark"] for f in doc["failures"]}, {"programs/sqlite"})


class JsonTest(unittest.TestCase):
    META = {"commit": "0123456789abcdef0123456789abcdef01234567", "commit_subject": "s",
            "commit_time": "2025-01-01T00:00:00+00:00", "time": "2025-01-02T00:00:00Z",
            "branch": "main"}
    MACHINE = {"hostname": "h", "cpus": 2, "cpu_model": "m", "kernel": "k", "mem_gb": 24}

    def doc(self):
        case, allocs, ms = fake_measurements()
        groups = [("larson t=2", case, ms)]
        results = bench.results_json(groups)
        return bench.make_document(self.META, self.MACHINE, "quick", 3, "release", results,
                                   [{"benchmark": "larson", "error": "x"}],
                                   [{"allocator": "tcmalloc", "reason": "missing"}])

    def test_schema(self):
        doc = self.doc()
        self.assertEqual(bench.validate_document(doc), [])
        self.assertEqual(set(doc), {"schema", "commit", "commit_subject", "commit_time", "time",
                                    "branch", "machine", "config", "results", "failures",
                                    "skipped"})
        self.assertEqual(doc["config"], {"mode": "quick", "rounds": 3, "build": "release"})
        self.assertEqual(set(doc["machine"]), {"hostname", "cpus", "cpu_model", "kernel",
                                               "mem_gb"})
        result_fields = bench.runschema.load_schema()["$defs"]["result"]["properties"]
        for r in doc["results"]:
            self.assertEqual(set(r), set(result_fields))
        by = {(r["allocator"], r["variant"]): r for r in doc["results"]}
        # The failed allocator is absent; the two hakmem variants are one allocator.
        self.assertEqual(sorted(by), [("glibc", ""), ("hakmem", "fastcache"),
                                      ("hakmem", "hardened"), ("hakmem", "nofastcache"),
                                      ("jemalloc", ""),
                                      ("mimalloc", ""), ("scudo", "")])
        h = by[("hakmem", "fastcache")]
        self.assertEqual((h["median"], h["min"], h["max"]), (200.0, 190.0, 210.0))
        self.assertEqual(h["values"], [190.0, 200.0, 210.0])
        self.assertEqual(h["benchmark"], "larson")
        self.assertEqual(h["params"], "2 8 1000 5000 100 4141")
        self.assertEqual(h["threads"], 2)
        self.assertEqual(h["metric"], "ops_per_sec")
        self.assertEqual(h["unit"], "ops/s")
        self.assertIs(h["higher_is_better"], True)
        self.assertEqual(h["peak_rss_kb"], 20480)
        self.assertEqual((h["wall_s"], h["cpu_s"]), (2.0, 3.5))
        json.loads(json.dumps(doc))  # serialisable

    def test_validation_catches_problems(self):
        # The rules are dashboards/run.schema.json's (the server's): a zero median and a
        # missing unit are allowed there, a negative median and a missing median are not.
        doc = self.doc()
        doc["results"][0]["median"] = -1
        self.assertTrue(any("results[0].median: must not be negative" in p
                            for p in bench.validate_document(doc)))
        doc = self.doc()
        del doc["results"][1]["median"]
        self.assertTrue(any("results[1].median: missing required field" in p
                            for p in bench.validate_document(doc)))
        doc = self.doc()
        doc["results"][0]["threads"] = True
        self.assertTrue(any("threads: expected an integer, got boolean" in p
                            for p in bench.validate_document(doc)))
        doc = self.doc()
        doc["config"]["mode"] = ""
        self.assertTrue(any("config.mode: must not be empty" in p for p in bench.validate_document(doc)))
        doc = self.doc()
        doc["results"][0]["min"] = doc["results"][0]["median"] + 1
        self.assertTrue(any("is greater than median" in p for p in bench.validate_document(doc)))
        doc = self.doc()
        doc["failures"] = {"not": "a list"}
        self.assertTrue(any("failures: expected an array" in p for p in bench.validate_document(doc)))

    def test_format_alerts(self):
        self.assertEqual(bench.format_alerts({"id": 1}), [])
        self.assertIn("no earlier run", bench.format_alerts({"alerts": [], "previous_run": None})[0])
        self.assertIn("nothing moved beyond the noise against run 4 (commit abcdef012345)",
                      bench.format_alerts({"alerts": [], "previous_run": {"id": 4, "commit": "abcdef0123456789"}})[0])
        lines = bench.format_alerts({"previous_run": {"id": 4, "commit": "abc"}, "alerts": [
            {"benchmark": "larson", "threads": 2, "label": "hakmem (fastcache)", "figure": "median",
             "metric": "ops_per_sec", "previous": 1e8, "current": 8e7, "change": -0.2, "threshold": 0.03},
            {"benchmark": "larson", "threads": 2, "label": "hakmem (fastcache)", "figure": "peak_rss_kb",
             "metric": "ops_per_sec", "previous": 10000, "current": 11000, "change": 0.1, "threshold": 0.03}]})
        self.assertEqual(lines[0], "REGRESSION ALERTS (2) against run 4 (commit abc), same machine and configuration:")
        self.assertEqual(lines[1], "  larson t=2 hakmem (fastcache) ops_per_sec: 100M -> 80.0M (-20.0%, noise 3.0%)")
        self.assertEqual(lines[2], "  larson t=2 hakmem (fastcache) peak RSS: 10000 kB -> 11000 kB (+10.0%, noise 3.0%)")

    def test_failures_json(self):
        case = bench.make_cases("quick", ["larson/t1", "micro"])
        alloc = bench.Allocator("hakmem-nofastcache", "nofastcache", "/x.so")
        j = bench.Job(1, case[0], alloc, 2)
        p = bench.ProcResult()
        p.exit_code, p.stderr = 139, "a\nb\nSegmentation fault\n"
        bench.evaluate(j, p)
        m = bench.Job(2, case[1], alloc, 1)
        q = bench.ProcResult()
        q.exit_code = 0
        m.proc = q
        m.micro = {"BM_A": (1.0, 1)}
        m.micro_errors = {"BM_B/threads:2": "boom"}
        out = bench.failures_json([j, m])
        self.assertEqual(out[0]["allocator"], "hakmem")
        self.assertEqual(out[0]["variant"], "nofastcache")
        self.assertEqual(out[0]["round"], 2)
        self.assertEqual(out[0]["error"], "exit status 139")
        self.assertIn("Segmentation fault", out[0]["stderr_tail"])
        self.assertEqual(out[1]["benchmark"], "micro/BM_B/threads:2")
        self.assertEqual(out[1]["threads"], 2)

    def test_micro_results(self):
        case = bench.make_cases("quick", ["micro"])[0]
        allocs = [bench.Allocator("glibc", "", None)]
        j = bench.Job(1, case, allocs[0], 1)
        p = bench.ProcResult()
        p.exit_code, p.wall_s, p.cpu_s, p.peak_rss_kb = 0, 4.0, 3.0, 5000
        j.proc = p
        j.micro = {"BM_X/threads:2": (12.5, 2)}
        groups, _ = bench.aggregate([j], [case], allocs)
        (r,) = bench.results_json(groups)
        self.assertEqual(r["benchmark"], "micro/BM_X/threads:2")
        self.assertEqual(r["metric"], "ns_per_op")
        self.assertEqual(r["unit"], "ns")
        self.assertIs(r["higher_is_better"], False)
        self.assertEqual(r["threads"], 2)
        self.assertEqual(r["median"], 12.5)
        self.assertEqual(r["peak_rss_kb"], 5000)

    def test_iso_utc(self):
        self.assertEqual(bench.iso_utc(0), "1970-01-01T00:00:00Z")


class EnvironmentTest(unittest.TestCase):
    def test_startup_opts_env_wins(self):
        with mock.patch.dict(os.environ, {"BENCH_BAZEL_STARTUP_OPTS": "--output_base=/tmp/x "
                                          "--host_jvm_args=-Xmx1g"}):
            self.assertEqual(bench.bazel_startup_opts("/ws"),
                             ["--output_base=/tmp/x", "--host_jvm_args=-Xmx1g"])

    def test_startup_opts_from_output_base(self):
        env = {k: v for k, v in os.environ.items() if k != "BENCH_BAZEL_STARTUP_OPTS"}
        argv0 = "/tmp/ob/execroot/hakmem/bazel-out/k8-fastbuild/bin/tools/bench.runfiles/x.py"
        with mock.patch.dict(os.environ, env, clear=True), \
                mock.patch.object(sys, "argv", [argv0]):
            self.assertEqual(bench.bazel_startup_opts("/ws"), ["--output_base=/tmp/ob"])
        with mock.patch.dict(os.environ, env, clear=True), \
                mock.patch.object(sys, "argv", ["/home/x/tools/bench.py"]):
            self.assertEqual(bench.bazel_startup_opts("/ws"), [])

    def test_build_kind(self):
        self.assertEqual(bench.build_kind_of("/o/execroot/h/bazel-out/k8-opt/bin"), "release")
        self.assertEqual(bench.build_kind_of("/o/execroot/h/bazel-out/k8-fastbuild/bin"),
                         "fastbuild")
        self.assertEqual(bench.build_kind_of("/somewhere"), "unknown")

    def test_clean_env(self):
        with mock.patch.dict(os.environ, {"LD_PRELOAD": "/old.so", "RUNFILES_DIR": "/r"}):
            env = bench.clean_env(None)
            self.assertNotIn("LD_PRELOAD", env)
            self.assertNotIn("RUNFILES_DIR", env)
            self.assertEqual(bench.clean_env("/new.so")["LD_PRELOAD"], "/new.so")

    def test_machine_info(self):
        m = bench.machine_info()
        self.assertGreaterEqual(m["cpus"], 1)
        self.assertIsInstance(m["mem_gb"], int)
        self.assertTrue(m["hostname"])


# --------------------------------------------------------------------------
# Processes and the runner end to end, on fake binaries.

def write_script(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


FAKE_LARSON = """#!/bin/sh
# larson <seconds> <min> <max> <chunks> <rounds> <seed> <threads>
echo "threads: $7"
case "$LD_PRELOAD" in
  *libhakmem.so) echo "Throughput = $((3000000 * $7)) operations per second" ;;
  *) echo "Throughput = $((1000000 * $7)) operations per second" ;;
esac
"""

FAKE_MTSTRESS = """#!/bin/sh
mode=""
while [ $# -gt 0 ]; do
  case "$1" in --mode) mode="$2"; shift ;; esac
  shift
done
case "$LD_PRELOAD:$mode" in
  *libhakmem.so:realloc) echo "oops" >&2; exit 3 ;;
  *:threadchurn) echo "no throughput line here" ;;
  *) echo "Throughput = 5000 operations per second" ;;
esac
"""

FAKE_MICRO = """#!/bin/sh
out=""
for a in "$@"; do
  case "$a" in --benchmark_out=*) out="${a#--benchmark_out=}" ;; esac
done
ns=10
case "$LD_PRELOAD" in *libhakmem.so) ns=4 ;; esac
cat > "$out" <<EOF
{"context": {}, "benchmarks": [
 {"name": "BM_MallocFree/64", "run_name": "BM_MallocFree/64", "run_type": "iteration",
  "iterations": 10, "real_time": $ns, "cpu_time": $ns, "time_unit": "ns"},
 {"name": "BM_Threads/threads:2", "run_name": "BM_Threads/threads:2", "run_type": "iteration",
  "iterations": 10, "real_time": 5, "cpu_time": 5, "time_unit": "ns", "threads": 2}
]}
EOF
"""


def find_real_library():
    """A harmless real shared library to stand in for libhakmem.so."""
    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
              "/lib", "/usr/lib"):
        p = os.path.join(d, "libm.so.6")
        if os.path.isfile(p):
            return p
    return None


class ProcessTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=TMP_ROOT)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def script(self, name, text):
        p = os.path.join(self.tmp, name)
        write_script(p, text)
        return p

    def test_run_process_figures(self):
        for use_time in (True, False):
            if use_time and not bench.rss_helper_available():
                continue
            with self.subTest(use_time=use_time):
                p = self.script("ok.sh", "#!/bin/sh\necho out; echo err >&2; exit 4\n")
                r = bench.run_process([p], dict(os.environ), 30, use_time=use_time)
                self.assertEqual((r.exit_code, r.term_signal, r.timed_out), (4, 0, False))
                self.assertEqual(r.stdout, "out\n")
                self.assertIn("err", r.stderr)
                self.assertGreater(r.peak_rss_kb, 0)
                self.assertGreater(r.wall_s, 0)

    def test_run_process_signal(self):
        p = self.script("segv.sh", "#!/bin/sh\nkill -SEGV $$\n")
        for use_time in (True, False):
            if use_time and not bench.rss_helper_available():
                continue
            with self.subTest(use_time=use_time):
                r = bench.run_process([p], dict(os.environ), 30, use_time=use_time)
                self.assertEqual(r.term_signal, 11)
                self.assertIsNone(r.exit_code)

    def test_run_process_timeout_kills_group(self):
        p = self.script("slow.sh", "#!/bin/sh\nsleep 30 &\nsleep 30\n")
        r = bench.run_process([p], dict(os.environ), 0.5)
        self.assertTrue(r.timed_out)
        self.assertLess(r.wall_s, 10)

    def test_run_process_missing_binary(self):
        r = bench.run_process([os.path.join(self.tmp, "nope")], dict(os.environ), 5)
        self.assertIn("cannot start", r.spawn_error)

    @unittest.skipUnless(bench.rss_helper_available(), "needs /usr/bin/time")
    def test_peak_rss_is_not_the_runners(self):
        # The runner holds 200 MiB; a tiny child must not report that much.
        ballast = bytearray(200 * 1024 * 1024)
        for i in range(0, len(ballast), 4096):
            ballast[i] = 1
        p = self.script("tiny.sh", "#!/bin/sh\nexit 0\n")
        r = bench.run_process([p], dict(os.environ), 30)
        self.assertLess(r.peak_rss_kb, 100 * 1024)
        del ballast


class RunnerTest(unittest.TestCase):
    """main() with --bin-dir on fake binaries."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=TMP_ROOT)
        self.bin = os.path.join(self.tmp, "bin")
        write_script(os.path.join(self.bin, "hakmem/bench/larson_system"), FAKE_LARSON)
        write_script(os.path.join(self.bin, "hakmem/bench/mtstress_system"), FAKE_MTSTRESS)
        write_script(os.path.join(self.bin, "hakmem/bench/micro_system"), FAKE_MICRO)
        self.peers = os.path.join(self.tmp, "peers")  # empty: every peer is skipped
        os.makedirs(self.peers)
        lib = find_real_library()
        if lib is None:
            self.skipTest("no libm.so.6 to stand in for libhakmem.so")
        for name in ("libhakmem.so", "libhakmem_nofastcache.so", "libhakmem_hardened.so"):
            shutil.copy(lib, os.path.join(self.bin, "hakmem", name))
        env = {k: v for k, v in os.environ.items()
               if k not in ("BUILD_WORKSPACE_DIRECTORY", "BUILD_WORKING_DIRECTORY",
                            "LD_PRELOAD", bench.TOKEN_ENV)}
        self.env = mock.patch.dict(os.environ, env, clear=True)
        self.env.start()
        # The Bazel sandbox has no .git: a run records this commit instead.
        self.git = mock.patch.object(bench, "git_meta", return_value={
            "commit": "0123456789abcdef0123456789abcdef01234567", "commit_subject": "test commit",
            "commit_time": "2026-01-01T00:00:00+00:00", "branch": "main", "dirty": False})
        self.git.start()

    def tearDown(self):
        self.git.stop()
        self.env.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def main(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = bench.main(["--bin-dir", self.bin, "--peer-lib-dir", self.peers] + list(argv))
        return code, out.getvalue(), err.getvalue()

    def test_success(self):
        js = os.path.join(self.tmp, "out", "r.json")
        code, out, err = self.main("--bench", "larson,micro,mtstress/churn", "--rounds", "2",
                                   "--json", js)
        self.assertEqual(code, 0, err)
        # Peers are skipped with a warning and recorded.
        self.assertIn("warning: skipping mimalloc", err)
        self.assertRegex(err, r"\[ 1/\d+\] larson t=1 round 1/2 hakmem \.\.\. 3\.00M ops/s")
        self.assertIn("ETA", err)
        self.assertIn("larson t=4", out)
        self.assertIn("micro", out)
        with open(js) as f:
            doc = json.load(f)
        self.assertEqual(bench.validate_document(doc), [])
        self.assertEqual(doc["failures"], [])
        self.assertEqual(sorted(s["allocator"] for s in doc["skipped"]),
                         ["jemalloc", "mimalloc", "scudo", "tcmalloc"])
        self.assertEqual(doc["config"]["rounds"], 2)
        self.assertEqual(doc["config"]["build"], "unknown")
        by = {(r["benchmark"], r["threads"], r["variant"]): r for r in doc["results"]}
        self.assertEqual(by[("larson", 4, "fastcache")]["median"], 12e6)
        self.assertEqual(by[("larson", 4, "")]["median"], 4e6)
        self.assertEqual(by[("larson", 4, "")]["allocator"], "glibc")
        self.assertEqual(by[("micro/BM_MallocFree/64", 1, "fastcache")]["median"], 4.0)
        self.assertEqual(by[("micro/BM_Threads/threads:2", 2, "")]["median"], 5.0)
        self.assertEqual(by[("mtstress/churn", 2, "nofastcache")]["values"], [5000, 5000])
        # hakmem does 3x glibc's throughput on larson: the table says so.
        larson1 = out[out.index("larson t=1"):]
        hak_row = [l for l in larson1.splitlines() if l.startswith("hakmem ")][0]
        self.assertIn("3.00x", hak_row)

    def test_new_mtstress_modes_end_to_end(self):
        js = os.path.join(self.tmp, "new.json")
        code, out, err = self.main("--bench", "mtstress/huge,mtstress/oneway64,mtstress/batch-lifo",
                                   "--rounds", "1", "--json", js)
        self.assertEqual(code, 0, err)
        with open(js) as f:
            doc = json.load(f)
        self.assertEqual(bench.validate_document(doc), [])
        got = {(r["benchmark"], r["threads"]) for r in doc["results"]}
        self.assertEqual(got, {("mtstress/huge", 1), ("mtstress/oneway64", 2),
                               ("mtstress/batch-lifo", 1)})
        self.assertIn("mtstress huge t=1", out)

    def test_calloc_swap_end_to_end(self):
        """One benchmark at two thread counts: two results, told apart by threads."""
        js = os.path.join(self.tmp, "cs.json")
        code, out, err = self.main("--bench", "mtstress/calloc-swap", "--rounds", "1",
                                   "--json", js)
        self.assertEqual(code, 0, err)
        with open(js) as f:
            doc = json.load(f)
        self.assertEqual(bench.validate_document(doc), [])
        got = sorted((r["benchmark"], r["threads"], r["variant"]) for r in doc["results"])
        self.assertEqual(len(got), len(set(got)))
        self.assertEqual(sorted({(b, t) for b, t, _ in got}),
                         [("mtstress/calloc-swap", 8), ("mtstress/calloc-swap", 32)])
        self.assertIn("mtstress calloc-swap t=8", out)
        self.assertIn("mtstress calloc-swap t=32", out)
        self.assertIn("--mode calloc-swap --threads 32", out)

    def test_medium_xthread_end_to_end(self):
        js = os.path.join(self.tmp, "mx.json")
        code, out, err = self.main("--bench", "mtstress/medium-xthread", "--rounds", "1",
                                   "--json", js)
        self.assertEqual(code, 0, err)
        with open(js) as f:
            doc = json.load(f)
        self.assertEqual(bench.validate_document(doc), [])
        self.assertEqual({(r["benchmark"], r["threads"]) for r in doc["results"]},
                         {("mtstress/medium-xthread", 2)})
        self.assertIn("mtstress medium-xthread t=2", out)
        self.assertIn("--mode medium-xthread --threads 2", out)

    @unittest.skipUnless(bench.rss_helper_available(), "needs /usr/bin/time")
    def test_footprint_end_to_end(self):
        for argv in bench.FOOTPRINT_PROGRAMS.values():
            if not os.access(argv[0][0], os.X_OK):
                self.skipTest("%s is not installed" % argv[0][0])
        js = os.path.join(self.tmp, "fp.json")
        code, out, err = self.main("--bench", "footprint", "--alloc", "hakmem,glibc",
                                   "--rounds", "2", "--json", js)
        self.assertEqual(code, 0, err)
        self.assertRegex(err, r"\[ 1/24\] footprint python-pass round 1/2 hakmem \.\.\. "
                              r"[0-9,]+ KiB peak RSS")
        made = re.search(r"footprint inputs made in (\S+) with glibc", err)
        self.assertIsNotNone(made, err)
        self.assertFalse(os.path.exists(made.group(1)))  # removed after the runs
        for p in bench.FOOTPRINT_PROGRAMS:
            self.assertIn("footprint %s  [" % p, out)
        self.assertIn("geometric mean (footprint)", out)
        with open(js) as f:
            doc = json.load(f)
        self.assertEqual(bench.validate_document(doc), [])
        self.assertEqual(doc["failures"], [])
        got = {(r["benchmark"], r["allocator"]) for r in doc["results"]}
        self.assertEqual(got, {("footprint/" + p, a) for p in bench.FOOTPRINT_PROGRAMS
                               for a in ("hakmem", "glibc")})
        for r in doc["results"]:
            self.assertEqual((r["metric"], r["unit"], r["higher_is_better"]),
                             ("peak_rss_kb", "KiB", False))
            self.assertEqual(len(r["values"]), 2)
            self.assertGreater(r["median"], 100)

    @unittest.skipUnless(programs_installed() and bench.rss_helper_available(),
                         "needs the programs and /usr/bin/time")
    def test_programs_end_to_end(self):
        js = os.path.join(self.tmp, "programs.json")
        with mock.patch.dict(bench_programs.SIZES["quick"], TINY_SIZES):
            code, out, err = self.main("--bench", "programs/redis,programs/sqlite",
                                       "--alloc", "hakmem,glibc", "--rounds", "2", "--json", js)
        self.assertEqual(code, 0, err)
        self.assertRegex(err, r"\[1/8\] programs redis round 1/2 hakmem \.\.\. [0-9.]+k? req/s "
                              r"\(GET [0-9.]+k?, .*LRANGE_100-P16 [0-9.]+k?\), [0-9.]+ MiB peak RSS")
        self.assertRegex(err, r"programs sqlite round 2/2 glibc \.\.\. [0-9.]+ s, [0-9.]+ MiB")
        made = re.search(r"programs inputs made in (\S+) with glibc", err)
        self.assertIsNotNone(made, err)
        self.assertFalse(os.path.exists(made.group(1)))  # removed after the runs
        self.assertIn("programs redis/LRANGE_100-P16  [redis-benchmark", out)
        self.assertIn("programs sqlite  [sqlite3 :memory: script of 300 rows", out)
        self.assertIn("geometric mean (programs)", out)
        with open(js) as f:
            doc = json.load(f)
        self.assertEqual(bench.validate_document(doc), [])
        self.assertEqual(doc["failures"], [])
        got = {(r["benchmark"], r["allocator"]) for r in doc["results"]}
        names = ["programs/redis/" + f for f in bench_programs.figure_names("redis")]
        self.assertEqual(got, {(b, a) for b in names + ["programs/sqlite"]
                               for a in ("hakmem", "glibc")})
        for r in doc["results"]:
            self.assertEqual(len(r["values"]), 2)
            self.assertGreater(r["peak_rss_kb"], 1000)

    def test_footprint_needs_gnu_time(self):
        with mock.patch.object(bench, "rss_helper_available", return_value=False):
            code, out, err = self.main("--bench", "footprint,larson/t1", "--rounds", "1",
                                       "--alloc", "glibc")
            self.assertEqual(code, 0, err)
            self.assertIn("leaving out the footprint cases", err)
            self.assertIn("larson t=1", out)
            self.assertNotIn("footprint", out)
            code, out, err = self.main("--bench", "footprint/sort", "--rounds", "1")
            self.assertEqual(code, 1)
            self.assertIn("no benchmark left to run", err)

    def test_footprint_dry_run(self):
        code, out, err = self.main("--bench", "footprint/sort,footprint/git-log", "--dry-run",
                                   "--alloc", "glibc,hakmem")
        self.assertEqual(code, 0, err)
        self.assertEqual(out, "")
        self.assertIn("[4/8] round 1 glibc: /usr/bin/sort '<work>/lines.txt'", err)
        self.assertIn("LD_PRELOAD=", err)
        self.assertNotIn("footprint inputs made", err)

    def test_failures_are_reported_and_exit_nonzero(self):
        js = os.path.join(self.tmp, "r.json")
        code, out, err = self.main("--bench", "mtstress/realloc,mtstress/threadchurn",
                                   "--rounds", "1", "--json", js)
        self.assertEqual(code, 1)
        self.assertIn("FAILED: exit status 3", err)
        self.assertIn("| oops", err)
        self.assertIn("FAILURES (5):", out)
        self.assertIn("FAILED", out)
        with open(js) as f:
            doc = json.load(f)
        self.assertEqual(bench.validate_document(doc), [])
        errors = sorted((f["benchmark"], f["variant"], f["error"]) for f in doc["failures"])
        self.assertEqual(errors[0], ("mtstress/realloc", "fastcache", "exit status 3"))
        self.assertTrue(all("Throughput" in e[2] for e in errors[1:]))
        # Only the successful measurement is in results.
        self.assertEqual([(r["benchmark"], r["variant"]) for r in doc["results"]],
                         [("mtstress/realloc", "nofastcache"), ("mtstress/realloc", "hardened"),
                          ("mtstress/realloc", "")])

    def test_run_without_a_commit_is_not_written(self):
        js = os.path.join(self.tmp, "r.json")
        with mock.patch.object(bench, "git_meta", return_value={
                "commit": "unknown", "commit_subject": "", "commit_time": "", "branch": "", "dirty": False}):
            code, _, err = self.main("--bench", "larson/t1", "--rounds", "1", "--alloc", "glibc", "--json", js)
        self.assertEqual(code, 1)
        self.assertIn("does not match dashboards/run.schema.json; nothing written", err)
        self.assertIn('commit: invalid value "unknown"', err)
        self.assertIn("from a git checkout", err)
        self.assertFalse(os.path.exists(js))

    def test_preload_that_does_not_load_fails(self):
        with open(os.path.join(self.bin, "hakmem", "libhakmem.so"), "w") as f:
            f.write("not an ELF file\n")
        code, out, err = self.main("--bench", "larson/t1", "--rounds", "1",
                                   "--alloc", "hakmem,glibc")
        self.assertEqual(code, 1)
        self.assertIn("LD_PRELOAD was not applied", out + err)

    def test_missing_binary_is_an_error(self):
        os.unlink(os.path.join(self.bin, "hakmem/bench/micro_system"))
        code, _, err = self.main("--bench", "micro", "--rounds", "1")
        self.assertEqual(code, 1)
        self.assertIn("micro binary not found", err)

    def test_dry_run_runs_nothing(self):
        code, out, err = self.main("--bench", "larson", "--dry-run", "--alloc", "glibc")
        self.assertEqual(code, 0)
        self.assertEqual(out, "")
        self.assertIn("[4/8] round 1 glibc", err)

    def test_push(self):
        received = []
        replies = [
            (201, {"id": 7, "results": 1, "previous_run": {"id": 6, "commit": "0123456789abcdef"},
                   "alerts": [{"benchmark": "larson", "threads": 1, "label": "hakmem (fastcache)",
                               "figure": "median", "metric": "ops_per_sec", "previous": 4e6,
                               "current": 3e6, "change": -0.25, "threshold": 0.05}],
                   "improvements": []}),
            (400, {"error": "bad run"}),
            (401, {"error": "pushing a run needs 'Authorization: Bearer <token>'"}),
        ]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, self.headers["Content-Type"], json.loads(body),
                                 self.headers.get("Authorization")))
                status, obj = replies[min(len(received), len(replies)) - 1]
                reply = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *a):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        token_file = os.path.join(self.tmp, "token")
        with open(token_file, "w") as f:
            f.write("secret-token-from-file\n")
        try:
            url = "http://127.0.0.1:%d/" % server.server_address[1]
            code, out, err = self.main("--bench", "larson/t1", "--rounds", "1", "--push", url,
                                       "--token-file", token_file)
            self.assertEqual(code, 0, err)
            self.assertIn('HTTP 201: {"id": 7, "results": 1', err)
            self.assertIn("REGRESSION ALERTS (1) against run 6 (commit 0123456789ab)", out)
            self.assertIn("  larson t=1 hakmem (fastcache) ops_per_sec: 4.00M -> 3.00M (-25.0%, noise 5.0%)",
                          out)
            path, ctype, doc, auth = received[0]
            self.assertEqual(path, "/api/runs")
            self.assertEqual(ctype, "application/json")
            self.assertEqual(auth, "Bearer secret-token-from-file")
            self.assertEqual(bench.validate_document(doc), [])
            with mock.patch.dict(os.environ, {bench.TOKEN_ENV: "secret-token-from-env"}):
                code, _, err = self.main("--bench", "larson/t1", "--rounds", "1", "--push", url)
            self.assertEqual(code, 1)
            self.assertEqual(received[1][3], "Bearer secret-token-from-env")
            self.assertIn("HTTP 400", err)
            self.assertIn("bad run", err)
            code, _, err = self.main("--bench", "larson/t1", "--rounds", "1", "--push", url)
            self.assertEqual(code, 1)
            self.assertIsNone(received[2][3])  # no token anywhere: no header
            self.assertIn("HTTP 401", err)
            self.assertIn("give the token with --token-file", err)
            # An unreadable token file stops before any benchmark runs.
            code, out, err = self.main("--bench", "larson/t1", "--rounds", "1", "--push", url,
                                       "--token-file", os.path.join(self.tmp, "missing"))
            self.assertEqual(code, 1)
            self.assertIn("cannot read the push token", err)
            self.assertEqual(out, "")
            self.assertEqual(len(received), 3)
        finally:
            server.shutdown()
            server.server_close()
        # Nobody listening any more.
        ok, msg, reply = bench.push(url, {"schema": 1})
        self.assertFalse(ok)
        self.assertIsNone(reply)
        self.assertIn("push to %sapi/runs failed" % url, msg)


FAKE_MICRO_PEER_REFUSES = """#!/bin/sh
out=""
for a in "$@"; do
  case "$a" in --benchmark_out=*) out="${a#--benchmark_out=}" ;; esac
done
ns=10
case "$LD_PRELOAD" in *libhakmem.so) ns=4 ;; esac
err=""
case "$LD_PRELOAD" in *%s) err=', "error_occurred": true, "error_message": "aligned_alloc returned NULL"' ;; esac
cat > "$out" <<EOF
{"context": {}, "benchmarks": [
 {"name": "BM_MallocFree/64", "run_name": "BM_MallocFree/64", "run_type": "iteration",
  "iterations": 10, "real_time": $ns, "cpu_time": $ns, "time_unit": "ns"},
 {"name": "BM_Aligned", "run_name": "BM_Aligned", "run_type": "iteration",
  "iterations": 10, "real_time": 7, "cpu_time": 7, "time_unit": "ns"$err}
]}
EOF
"""


class FakeDashboard:
    """An HTTP server answering POST /api/runs from a list of (status, JSON) replies, the last one
    repeated, and GET /api/runs/<id>/alerts with `alerts`."""

    def __init__(self, replies, alerts=None):
        self.replies = replies
        self.alerts = alerts or {"previous_run": None, "alerts": [], "improvements": []}
        self.received = []
        self.gets = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self, status, obj):
                reply = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((json.loads(body), self.headers.get("Authorization")))
                self.answer(*outer.replies[min(len(outer.received), len(outer.replies)) - 1])

            def do_GET(self):
                outer.gets.append(self.path)
                self.answer(200, outer.alerts)

            def log_message(self, *a):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/" % self.server.server_address[1]
        self.closed = False
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        if not self.closed:
            self.closed = True
            self.server.shutdown()
            self.server.server_close()


ALERT = {"benchmark": "larson", "threads": 1, "label": "hakmem (fastcache)", "figure": "median",
         "metric": "ops_per_sec", "previous": 4e6, "current": 3e6, "change": -0.25, "threshold": 0.05}


class PushFlagsTest(RunnerTest):
    """--fail-on-regression, --push-file, --push-retries and --strict."""

    def dashboard(self, replies, alerts=None):
        d = FakeDashboard(replies, alerts)
        self.addCleanup(d.close)
        return d

    def saved_run(self):
        js = os.path.join(self.tmp, "saved.json")
        code, _, err = self.main("--bench", "larson/t1", "--rounds", "1", "--alloc", "hakmem,glibc", "--json", js)
        self.assertEqual(code, 0, err)
        with open(js) as f:
            return js, json.load(f)

    def test_fail_on_regression(self):
        regressed = (201, {"id": 7, "results": 1, "previous_run": {"id": 6, "commit": "abc1234"},
                           "alerts": [ALERT], "improvements": []})
        d = self.dashboard([regressed])
        args = ("--bench", "larson/t1", "--rounds", "1", "--alloc", "hakmem,glibc", "--push", d.url)
        code, out, err = self.main(*args)
        self.assertEqual(code, 0, err)  # without the flag alerts are printed, not fatal
        self.assertIn("REGRESSION ALERTS (1)", out)
        code, out, err = self.main(*args + ("--fail-on-regression",))
        self.assertEqual(code, bench.REGRESSION_STATUS)
        self.assertEqual(code, 3)
        self.assertIn("exit status 3: --fail-on-regression, and the dashboard reported 1 regression alert", err)
        d.replies[:] = [(201, {"id": 8, "results": 1, "previous_run": {"id": 7, "commit": "abc1234"},
                               "alerts": [], "improvements": [ALERT]})]
        code, out, err = self.main(*args + ("--fail-on-regression",))
        self.assertEqual(code, 0, err)
        with self.assertRaises(SystemExit) as ctx, contextlib.redirect_stderr(io.StringIO()) as e:
            bench.parse_args(["--fail-on-regression"])
        self.assertEqual(ctx.exception.code, 2)
        self.assertIn("--fail-on-regression needs --push URL", e.getvalue())

    def test_push_file(self):
        js, saved = self.saved_run()
        d = self.dashboard([(201, {"id": 3, "results": 2, "previous_run": None, "alerts": [],
                                   "improvements": []})])
        code, out, err = self.main("--push-file", js, "--push", d.url)
        self.assertEqual(code, 0, err)
        self.assertEqual(d.received, [(saved, None)])  # the file as it is, no benchmark run
        self.assertNotIn("larson", out)
        self.assertIn("pushing %s (commit 0123456789ab, %d results)" % (js, len(saved["results"])), err)
        self.assertIn('HTTP 201: {"id": 3', err)
        # Bad files are refused before anything is sent.
        cases = [("missing.json", None, r"cannot read .*missing\.json"),
                 ("garbage.json", "{", r"garbage\.json is not valid JSON"),
                 ("list.json", "[]", r"holds a JSON list; a saved run is one object"),
                 ("dup.json", '{"schema": 1, "schema": 1}', r"not valid JSON: duplicate key \"schema\""),
                 ("bad.json", json.dumps(dict(saved, commit="xyz")),
                  r"does not match dashboards/run\.schema\.json; nothing pushed:\n  commit: invalid value")]
        for name, text, pattern in cases:
            path = os.path.join(self.tmp, name)
            if text is not None:
                with open(path, "w") as f:
                    f.write(text)
            code, _, err = self.main("--push-file", path, "--push", d.url)
            self.assertEqual(code, 1, name)
            self.assertRegex(err, pattern)
        self.assertEqual(len(d.received), 1)
        with self.assertRaises(SystemExit) as ctx, contextlib.redirect_stderr(io.StringIO()) as e:
            bench.parse_args(["--push-file", js])
        self.assertEqual(ctx.exception.code, 2)
        self.assertIn("--push-file needs --push URL", e.getvalue())
        # Pushed before: 409 is success, and the stored run's alerts count for --fail-on-regression.
        d.replies[:] = [(409, {"error": "duplicate run", "id": 3})]
        d.alerts = {"previous_run": {"id": 2, "commit": "abc1234"}, "alerts": [ALERT], "improvements": []}
        code, out, err = self.main("--push-file", js, "--push", d.url, "--fail-on-regression")
        self.assertEqual(code, 3, err)
        self.assertIn("already stored as run 3 (an earlier push got through); nothing changed", err)
        self.assertEqual(d.gets, ["/api/runs/3/alerts"])
        self.assertIn("REGRESSION ALERTS (1) against run 2", out)

    def test_retries_with_backoff(self):
        js, saved = self.saved_run()
        d = self.dashboard([(503, {"error": "busy"}), (502, {"error": "proxy"}),
                            (201, {"id": 4, "results": 2, "previous_run": None, "alerts": [],
                                   "improvements": []})])
        waits = []
        with mock.patch.object(bench.time, "sleep", waits.append):
            code, _, err = self.main("--push-file", js, "--push", d.url)
        self.assertEqual(code, 0, err)
        self.assertEqual(waits, [2, 4])
        self.assertEqual(len(d.received), 3)
        self.assertRegex(err, r"try 1 of 4 failed: HTTP 503 .*busy.*; trying again in 2 s")
        self.assertRegex(err, r"try 2 of 4 failed: HTTP 502 .*; trying again in 4 s")
        # Bounded: always 503 gives up after 1 + --push-retries tries.
        d.replies[:] = [(503, {"error": "busy"})]
        waits.clear()
        with mock.patch.object(bench.time, "sleep", waits.append):
            code, _, err = self.main("--push-file", js, "--push", d.url, "--push-retries", "2")
        self.assertEqual(code, 1)
        self.assertEqual(waits, [2, 4])
        self.assertEqual(len(d.received), 6)
        self.assertRegex(err, r"error: push to .*api/runs failed: HTTP 503 .*busy.* \(tried 3 times\)")
        # A refusal is final: no retry of a 400.
        d.replies[:] = [(400, {"error": "bad run"})]
        with mock.patch.object(bench.time, "sleep", waits.append):
            code, _, err = self.main("--push-file", js, "--push", d.url)
        self.assertEqual(code, 1)
        self.assertEqual(len(d.received), 7)
        self.assertNotIn("trying again", err)
        # No server at all: retried, then a clear message. The waits double up to the cap.
        url = d.url
        d.close()
        waits.clear()
        with mock.patch.object(bench.time, "sleep", waits.append), \
                contextlib.redirect_stderr(io.StringIO()):
            ok, msg, reply = bench.push(url, saved, retries=6)
        self.assertFalse(ok)
        self.assertEqual(waits, [2, 4, 8, 16, 30, 30])
        self.assertRegex(msg, r"push to .*api/runs failed: .*refused.* \(tried 7 times\)")
        with self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
            bench.parse_args(["--push", url, "--push-retries", "11"])

    def test_peer_failure_is_not_fatal_unless_strict(self):
        write_script(os.path.join(self.bin, "hakmem/bench/micro_system"),
                     FAKE_MICRO_PEER_REFUSES % "libmimalloc.so.2")
        shutil.copy(find_real_library(), os.path.join(self.peers, "libmimalloc.so.2"))
        js = os.path.join(self.tmp, "r.json")
        args = ("--bench", "micro", "--rounds", "1", "--alloc", "hakmem,glibc,mimalloc", "--json", js)
        code, out, err = self.main(*args)
        self.assertEqual(code, 0, err)
        row = [l for l in out.splitlines() if l.startswith("BM_Aligned ")][0]
        self.assertIn("FAILED", row)  # the peer's failure is in its table
        self.assertIn("FAILURES (1):", out)
        self.assertIn("micro/BM_Aligned t=1 round 1 mimalloc: aligned_alloc returned NULL  (peer: not fatal)", out)
        self.assertIn("1 run(s) failed; see FAILURES above (1 of a peer allocator: not fatal without --strict)",
                      err)
        with open(js) as f:
            self.assertEqual([(x["allocator"], x["benchmark"]) for x in json.load(f)["failures"]],
                             [("mimalloc", "micro/BM_Aligned")])
        code, out, err = self.main(*args + ("--strict",))
        self.assertEqual(code, 1)
        self.assertIn("fatal with --strict", err)
        # hakmem failing the same benchmark fails the run without --strict.
        write_script(os.path.join(self.bin, "hakmem/bench/micro_system"),
                     FAKE_MICRO_PEER_REFUSES % "libhakmem.so")
        code, out, err = self.main(*args)
        self.assertEqual(code, 1)


class ShortSubjectTest(unittest.TestCase):
    def test_long_subject_is_cut_to_the_dashboard_limit(self):
        long = "x" * 250
        cut = bench.short_subject(long)
        self.assertEqual(len(cut), bench.SUBJECT_MAX)
        self.assertTrue(cut.endswith("..."))

    def test_short_subject_is_kept(self):
        self.assertEqual(bench.short_subject("fix the thing"), "fix the thing")
        self.assertEqual(bench.short_subject("y" * 200), "y" * 200)


if __name__ == "__main__":
    unittest.main()
