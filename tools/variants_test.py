#!/usr/bin/env python3
"""Unit tests of tools/variants.py: the real hakmem/variants.bzl, and made-up ones."""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import variants  # noqa: E402

GOOD = '''"""Doc string."""
load("//hakmem:copts.bzl", "HAKMEM_COPTS")

HAKMEM_VARIANTS = [
    {
        # the default
        "suffix": "",
        "short_name": "plain",
        "defines": ["A=1"],  # a comment inside the literal
    },
    {"suffix": "_x", "short_name": "x", "defines": []},
]

OTHER = [HAKMEM_VARIANTS[0]]

def f(**kwargs):
    return [v for v in HAKMEM_VARIANTS]
'''


class RealFileTest(unittest.TestCase):
    def test_real_variants_bzl(self):
        vs = variants.load()
        names = [v["short_name"] for v in vs]
        self.assertIn("fastcache", names)
        self.assertEqual(vs[0]["suffix"], "")
        for v in vs:
            self.assertTrue(v["defines"])
            self.assertEqual(variants.library_target(v), "//hakmem:libhakmem%s.so" % v["suffix"])

    def test_allocator_names(self):
        vs = variants.load()
        self.assertEqual(variants.allocator_name(vs[0]), "hakmem")
        for v in vs[1:]:
            self.assertEqual(variants.allocator_name(v), "hakmem-" + v["short_name"])


class ParseTest(unittest.TestCase):
    def test_good(self):
        vs = variants.parse(GOOD)
        self.assertEqual([v["short_name"] for v in vs], ["plain", "x"])
        self.assertEqual(vs[0]["defines"], ["A=1"])
        self.assertEqual(variants.library(vs[1]), "hakmem/libhakmem_x.so")

    def test_load_from_path(self):
        with tempfile.NamedTemporaryFile("w", suffix=".bzl", delete=False) as f:
            f.write(GOOD)
        try:
            self.assertEqual(len(variants.load(f.name)), 2)
        finally:
            os.unlink(f.name)

    def test_errors(self):
        bad = {
            "missing": "X = []\n",
            "not a literal": "HAKMEM_VARIANTS = [dict(suffix = '')]\n",
            "empty": "HAKMEM_VARIANTS = []\n",
            "no suffix": "HAKMEM_VARIANTS = [{'short_name': 'a', 'defines': []}]\n",
            "no default": "HAKMEM_VARIANTS = [{'suffix': '_a', 'short_name': 'a', 'defines': []}]\n",
            "twice": "HAKMEM_VARIANTS = [{'suffix': '', 'short_name': 'a', 'defines': []},"
                     " {'suffix': '_a', 'short_name': 'a', 'defines': []}]\n",
            "defines": "HAKMEM_VARIANTS = [{'suffix': '', 'short_name': 'a', 'defines': [1]}]\n",
        }
        for what, text in bad.items():
            with self.subTest(what):
                with self.assertRaises(variants.VariantsError):
                    variants.parse(text)

    def test_missing_file(self):
        with self.assertRaises(variants.VariantsError):
            variants.load("/nonexistent/variants.bzl")


if __name__ == "__main__":
    unittest.main()
