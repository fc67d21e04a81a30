#!/usr/bin/env python3
"""Unit tests of tools/misuse_matrix.py: the classifier, hakmem's promise and
the table on made-up runs, then a few real runs of the misuse_matrix program
with glibc's own malloc (glibc 2.36 of Debian 12: its tcache catches an
immediate double free, and nothing catches a write into the middle of a
freed block).

    bazel test //tools:misuse_matrix_test
    MISUSE_MATRIX_PROGRAM=bazel-bin/hakmem/tests/reliability/misuse_matrix \\
        python3 -m unittest tools/misuse_matrix_test.py
"""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import misuse_matrix as mm  # noqa: E402

PROGRAM = os.environ.get("MISUSE_MATRIX_PROGRAM", "")

ABRT = -signal.SIGABRT
SEGV = -signal.SIGSEGV


class ClassifyTest(unittest.TestCase):
    def test_sigabrt_with_a_hakmem_line_is_reported(self):
        out = "victim 0x1000\nhakmem: free(): double free of 0x1000\n"
        self.assertEqual(mm.classify(ABRT, out),
                         (mm.REPORTED, "SIGABRT: hakmem: free(): double free of 0x1000"))

    def test_sigabrt_without_a_message_is_still_reported(self):
        self.assertEqual(mm.classify(ABRT, "victim 0x1000\n"),
                         (mm.REPORTED, "SIGABRT: no message"))

    def test_every_allocators_message_is_recognised(self):
        lines = [
            "hakmem: heap corruption: free block 0x10 was written to after it was freed",
            "free(): double free detected in tcache 2",
            "free(): invalid pointer",
            "realloc(): invalid pointer",
            "malloc(): unaligned tcache chunk detected",
            "munmap_chunk(): invalid pointer",
            "double free or corruption (fasttop)",
            "corrupted size vs. prev_size",
            "Scudo ERROR: invalid chunk state when deallocating address 0x10",
            "<jemalloc>: some check failed",
            "src/tcmalloc.cc:333] Attempt to free invalid pointer 0x10",
            "mimalloc: error: double free detected of block 0x10",
        ]
        for line in lines:
            with self.subTest(line=line):
                verdict, detail = mm.classify(SEGV, "victim 0x10\n" + line + "\n")
                self.assertEqual(verdict, mm.REPORTED)
                self.assertIn(line, detail)

    def test_a_signal_without_a_message_is_a_crash(self):
        self.assertEqual(mm.classify(SEGV, "victim 0x10\n"), (mm.CRASHED, "SIGSEGV"))
        self.assertEqual(mm.classify(-signal.SIGBUS, ""), (mm.CRASHED, "SIGBUS"))

    def test_hakmems_crash_report_is_not_a_misuse_report(self):
        out = ("victim 0x10\nhakmem: crash report: signal 11 (SIGSEGV) at address 0x10; "
               "in a hakmem region: no\n")
        self.assertEqual(mm.classify(SEGV, out)[0], mm.CRASHED)

    def test_exit_0_is_silent(self):
        self.assertEqual(mm.classify(0, "victim 0x10\nsurvived\n"), (mm.SILENT, "exit 0"))

    def test_exit_0_after_an_error_line_is_silent_but_warned(self):
        out = "victim 0x10\nmimalloc: error: double free detected of block 0x10\n"
        self.assertEqual(mm.classify(0, out)[0], mm.SILENT_WARNED)

    def test_duplicate_and_overlap_are_silent_damage(self):
        self.assertEqual(mm.classify(3, "victim 0x10\nDUPLICATE 0x10 handed out twice\n"),
                         (mm.SILENT_DUPLICATE, "DUPLICATE 0x10 handed out twice"))
        out = "OVERLAP 0x10 (256 bytes) and 0x50 (256 bytes)\n"
        self.assertEqual(mm.classify(3, out)[0], mm.SILENT_DUPLICATE)

    def test_exit_3_without_the_word_is_not_damage(self):
        self.assertEqual(mm.classify(3, "victim 0x10\n")[0], mm.ERROR)

    def test_nonzero_exit_after_an_error_line_is_reported(self):
        self.assertEqual(mm.classify(1, "<jemalloc>: bad\n")[0], mm.REPORTED)

    def test_precondition_timeout_and_failed_preload_are_errors_or_hangs(self):
        self.assertEqual(mm.classify(77, "precondition failed: mmap\n"),
                         (mm.ERROR, "precondition failed: mmap"))
        self.assertEqual(mm.classify(0, "", timed_out=True)[0], mm.HUNG)
        out = ("ERROR: ld.so: object '/x.so' from LD_PRELOAD cannot be preloaded "
               "(cannot open shared object file): ignored.\nvictim 0x10\n")
        self.assertEqual(mm.classify(0, out)[0], mm.ERROR)


class PromiseTest(unittest.TestCase):
    def test_reported_always_keeps_the_promise(self):
        for alloc in mm.HAKMEM_NAMES:
            self.assertTrue(mm.expectation_met(alloc, "double-free", mm.REPORTED))
            self.assertTrue(mm.expectation_met(alloc, "overflow-neighbour", mm.REPORTED))

    def test_anything_else_breaks_it_for_an_ordinary_case(self):
        for alloc in mm.HAKMEM_NAMES:
            for verdict in mm.VERDICTS:
                if verdict != mm.REPORTED:
                    self.assertFalse(mm.expectation_met(alloc, "double-free-aba", verdict))

    def test_release_variants_may_miss_the_hardened_only_cases_quietly(self):
        for alloc in ("hakmem", "hakmem-nofastcache"):
            for case in mm.HARDENED_ONLY:
                self.assertTrue(mm.expectation_met(alloc, case, mm.SILENT))
                self.assertTrue(mm.expectation_met(alloc, case, mm.SILENT_WARNED))
                for verdict in (mm.CRASHED, mm.SILENT_DUPLICATE, mm.HUNG, mm.ERROR):
                    self.assertFalse(mm.expectation_met(alloc, case, verdict))

    def test_the_hardened_variant_must_report_them(self):
        for case in mm.HARDENED_ONLY:
            if ("hakmem-hardened", case) in mm.KNOWN_GAPS:
                continue
            self.assertFalse(mm.expectation_met("hakmem-hardened", case, mm.SILENT))

    def test_known_gaps_are_listed_and_still_refuse_damage(self):
        # Growing this list is a decision, not a side effect.
        self.assertEqual(mm.KNOWN_GAPS, set())
        for alloc, case in mm.KNOWN_GAPS:
            self.assertTrue(mm.expectation_met(alloc, case, mm.SILENT))
            for verdict in (mm.CRASHED, mm.SILENT_DUPLICATE, mm.HUNG, mm.ERROR):
                self.assertFalse(mm.expectation_met(alloc, case, verdict))

    def test_failures_name_hakmem_cells_only(self):
        results = [
            {"case": "double-free", "allocator": "hakmem", "verdict": mm.SILENT,
             "detail": "exit 0"},
            {"case": "double-free", "allocator": "mimalloc", "verdict": mm.SILENT,
             "detail": "exit 0"},
            {"case": "uaf-write-middle", "allocator": "hakmem", "verdict": mm.SILENT,
             "detail": "exit 0"},
            {"case": "overflow-neighbour", "allocator": "hakmem-hardened",
             "verdict": mm.SILENT_DUPLICATE, "detail": "DUPLICATE 0x10 handed out twice"},
        ]
        self.assertEqual(mm.hakmem_failures(results), [
            "double-free / hakmem: silent (expected reported) -- exit 0",
            "overflow-neighbour / hakmem-hardened: silent (duplicate) (expected reported) -- "
            "DUPLICATE 0x10 handed out twice",
        ])


class TableTest(unittest.TestCase):
    def test_rows_are_cases_and_columns_allocators(self):
        results = [
            {"case": "a", "allocator": "hakmem", "verdict": mm.REPORTED},
            {"case": "a", "allocator": "glibc", "verdict": mm.SILENT_DUPLICATE},
            {"case": "bb", "allocator": "hakmem", "verdict": mm.CRASHED},
            {"case": "bb", "allocator": "glibc", "verdict": mm.SILENT},
        ]
        table = mm.markdown_table(["a", "bb"], ["hakmem", "glibc", "scudo"], results,
                                  skipped={"scudo": "missing"})
        self.assertEqual(table.splitlines(), [
            "| case | hakmem   | glibc              | scudo |",
            "| ---- | -------- | ------------------ | ----- |",
            "| a    | reported | silent (duplicate) | n/a   |",
            "| bb   | crashed  | silent             | n/a   |",
        ])

    def test_lists(self):
        self.assertEqual(mm.parse_list("glibc,hakmem", mm.ALLOCATOR_NAMES, "allocator"),
                         ["hakmem", "glibc"])
        self.assertEqual(mm.parse_list("hakmem-all", mm.ALLOCATOR_NAMES, "allocator"),
                         mm.HAKMEM_NAMES)
        self.assertEqual(mm.parse_list("all", mm.ALLOCATOR_NAMES, "allocator"),
                         mm.ALLOCATOR_NAMES)
        with self.assertRaises(ValueError):
            mm.parse_list("ptmalloc", mm.ALLOCATOR_NAMES, "allocator")
        with self.assertRaises(ValueError):
            mm.parse_list(",", mm.ALLOCATOR_NAMES, "allocator")

    def test_scudo_is_a_peer_at_the_llvm_14_path(self):
        self.assertIn(("scudo", "peer", mm.SCUDO_LIB), mm.ALLOCATORS)
        self.assertTrue(mm.SCUDO_LIB.endswith("libclang_rt.scudo_standalone-x86_64.so"))

    def test_a_missing_peer_is_skipped_and_a_missing_hakmem_is_an_error(self):
        allocs, skipped, errors = mm.resolve_allocators(
            ["hakmem", "glibc", "jemalloc"], "/nonexistent", "/nonexistent")
        self.assertEqual([a.name for a in allocs], ["glibc"])
        self.assertIn("jemalloc", skipped)
        self.assertEqual(len(errors), 1)
        self.assertIn("hakmem", errors[0])

    def test_the_childs_environment_has_no_allocator_options(self):
        saved = dict(os.environ)
        try:
            os.environ.update({"LD_PRELOAD": "/x.so", "HAKMEM_CHECK": "full",
                               "MALLOC_CONF": "junk:true", "GLIBC_TUNABLES": "x=1"})
            env = mm.child_env("/y.so")
        finally:
            os.environ.clear()
            os.environ.update(saved)
        self.assertEqual(env["LD_PRELOAD"], "/y.so")
        self.assertEqual(env["LIBC_FATAL_STDERR_"], "1")
        for name in ("HAKMEM_CHECK", "MALLOC_CONF", "GLIBC_TUNABLES"):
            self.assertNotIn(name, env)
        self.assertNotIn("LD_PRELOAD", mm.child_env(None))


@unittest.skipUnless(os.access(PROGRAM, os.X_OK), "MISUSE_MATRIX_PROGRAM not set")
class ProgramTest(unittest.TestCase):
    """The real program, with glibc's malloc (no preload)."""

    glibc = mm.Allocator("glibc", "none", None)

    def test_list_names_at_least_24_distinct_cases(self):
        names = [c for c, _ in mm.list_cases(PROGRAM)]
        self.assertGreaterEqual(len(names), 24)
        self.assertEqual(len(names), len(set(names)))
        for case in mm.HARDENED_ONLY + ("double-free", "free-unmapped", "usable-size-freed"):
            self.assertIn(case, names)

    def test_bad_arguments_give_usage_and_exit_2(self):
        for argv in ([], ["no-such-case"], ["double-free", "extra"]):
            proc = subprocess.run([PROGRAM] + argv, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
            self.assertEqual(proc.returncode, 2, argv)
            self.assertIn(b"usage: misuse_matrix", proc.stderr)

    def test_glibc_tcache_reports_an_immediate_double_free(self):
        r = mm.run_case(PROGRAM, "double-free", self.glibc, 20)
        self.assertEqual(r["verdict"], mm.REPORTED, r)
        self.assertIn("free(): double free detected in tcache", r["detail"])
        self.assertIsNotNone(r["victim"])

    def test_glibc_does_not_see_a_write_into_the_middle_of_a_freed_block(self):
        r = mm.run_case(PROGRAM, "uaf-write-middle", self.glibc, 20)
        self.assertEqual(r["verdict"], mm.SILENT, r)

    def test_glibc_hands_a_block_out_twice_after_a_double_free_from_another_thread(self):
        # Each thread's tcache takes the block once: no check sees both.
        r = mm.run_case(PROGRAM, "double-free-other-thread", self.glibc, 20)
        self.assertEqual(r["verdict"], mm.SILENT_DUPLICATE, r)

    def test_the_whole_tool_prints_markdown_and_json(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = mm.main(["--program", PROGRAM, "--alloc", "glibc", "--cases",
                          "double-free,free-stack"])
        self.assertEqual(rc, 0)
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[0].split("|")[1:3], [" case        ", " glibc    "])
        self.assertIn("| double-free | reported |", lines)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            mm.main(["--program", PROGRAM, "--alloc", "glibc", "--cases", "free-stack",
                     "--json"])
        data = json.loads(out.getvalue())
        self.assertEqual([(r["case"], r["allocator"], r["verdict"]) for r in data["results"]],
                         [("free-stack", "glibc", mm.REPORTED)])


if __name__ == "__main__":
    unittest.main()
