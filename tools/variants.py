#!/usr/bin/env python3
"""hakmem's build variants, read from hakmem/variants.bzl (their one source).

The `HAKMEM_VARIANTS = [...]` literal there is a list of dicts of strings and
lists of strings, which Python reads as it is (ast.literal_eval), comments
included. Each variant has "suffix" ("" for the default variant; appended to
target names: //hakmem:libhakmem<suffix>.so), "short_name" (appended to test
names; recorded as the variant of a benchmark run) and "defines".

    python3 tools/variants.py [--bzl PATH]    prints "short_name suffix" per line

From Python: `variants.load()` (finds the file in the source tree, under
`bazel run` or in a test's runfiles) or `variants.load(path)`.
"""

import argparse
import ast
import io
import os
import sys
import tokenize

BZL_RELPATH = os.path.join("hakmem", "variants.bzl")
LIST_NAME = "HAKMEM_VARIANTS"


class VariantsError(Exception):
    """variants.bzl is missing or its list is not what this module expects."""


def default_path():
    """Where hakmem/variants.bzl is: the workspace of `bazel run`, a test's
    runfiles, or the source tree this file sits in."""
    candidates = []
    ws = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if ws:
        candidates.append(os.path.join(ws, BZL_RELPATH))
    for var in ("TEST_SRCDIR", "RUNFILES_DIR"):
        root = os.environ.get(var)
        if root:
            candidates.append(os.path.join(root, os.environ.get("TEST_WORKSPACE", "hakmem"),
                                           BZL_RELPATH))
    here = os.path.dirname(os.path.abspath(__file__))
    candidates.append(os.path.join(here, "..", BZL_RELPATH))
    for c in candidates:
        if os.path.isfile(c):
            return os.path.normpath(c)
    raise VariantsError("cannot find %s (looked in: %s)" % (BZL_RELPATH, ", ".join(candidates)))


def _literal_text(source):
    """The text of the list assigned to HAKMEM_VARIANTS at the top level."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    for i in range(len(tokens) - 2):
        t = tokens[i]
        if (t.type == tokenize.NAME and t.string == LIST_NAME and t.start[1] == 0
                and tokens[i + 1].string == "=" and tokens[i + 2].string == "["):
            start = tokens[i + 2].start
            depth = 0
            for u in tokens[i + 2:]:
                if u.type == tokenize.OP and u.string in "([{":
                    depth += 1
                elif u.type == tokenize.OP and u.string in ")]}":
                    depth -= 1
                    if depth == 0:
                        a = offsets[start[0] - 1] + start[1]
                        b = offsets[u.end[0] - 1] + u.end[1]
                        return source[a:b]
    raise VariantsError("no top-level `%s = [...]` found" % LIST_NAME)


def parse(source, where="variants.bzl"):
    """The variants in the text of a variants.bzl, checked."""
    try:
        value = ast.literal_eval(_literal_text(source))
    except (ValueError, SyntaxError, tokenize.TokenError) as exc:
        raise VariantsError("%s: %s is not a plain literal: %s" % (where, LIST_NAME, exc))
    if not isinstance(value, list) or not value:
        raise VariantsError("%s: %s must be a non-empty list" % (where, LIST_NAME))
    seen = set()
    for i, v in enumerate(value):
        if not isinstance(v, dict):
            raise VariantsError("%s: %s[%d] is not a dict" % (where, LIST_NAME, i))
        for key in ("suffix", "short_name"):
            if not isinstance(v.get(key), str):
                raise VariantsError("%s: %s[%d] has no string %r" % (where, LIST_NAME, i, key))
        defines = v.get("defines")
        if not isinstance(defines, list) or not all(isinstance(d, str) for d in defines):
            raise VariantsError("%s: %s[%d] has no list of strings 'defines'"
                                % (where, LIST_NAME, i))
        if v["short_name"] in seen:
            raise VariantsError("%s: short_name %r twice" % (where, v["short_name"]))
        seen.add(v["short_name"])
    if sum(1 for v in value if v["suffix"] == "") != 1:
        raise VariantsError("%s: exactly one variant must have the empty suffix" % where)
    return value


def load(path=None):
    """The variants of hakmem/variants.bzl (at path, or found by default_path())."""
    path = path or default_path()
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    except OSError as exc:
        raise VariantsError("cannot read %s: %s" % (path, exc))
    return parse(source, path)


def allocator_name(variant):
    """The allocator name benchmarks use: "hakmem" for the default variant,
    "hakmem-<short_name>" for the others."""
    return "hakmem" if variant["suffix"] == "" else "hakmem-" + variant["short_name"]


def library(variant):
    """The preload library, relative to bazel-bin."""
    return "hakmem/libhakmem%s.so" % variant["suffix"]


def library_target(variant):
    return "//hakmem:libhakmem%s.so" % variant["suffix"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bzl", help="path of variants.bzl (default: found automatically)")
    args = p.parse_args(argv)
    try:
        for v in load(args.bzl):
            print(v["short_name"], v["suffix"])
    except VariantsError as exc:
        print("variants.py: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
