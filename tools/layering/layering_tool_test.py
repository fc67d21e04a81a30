#!/usr/bin/env python3
"""Unit tests of tools/layering/layering.py on the fixtures in testdata/.

    bazel test //tools/layering:layering_tool_test
    python3 tools/layering/layering_tool_test.py      (from the workspace root)

testdata/*.xml are query outputs in Bazel's XML format over the fixture
sources in testdata/tree (clean.xml: a small core split into boxes, each with
_nofastcache and _hardened twins; cycle.xml: :log depends on :superslab;
undeclared_include.xml: :slab reaches :os only through :superslab but slab.c
includes "os.h"; variant_twin.xml: :slab_hardened depends on the default :os;
core_single_library.xml: what //tools/layering:core_graph printed for
today's //hakmem/core, one library per variant).
"""

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import layering  # noqa: E402

DATA = os.path.join(HERE, "testdata")
TREE = os.path.join(DATA, "tree")
SUFFIXES = ["--variant-suffix=", "--variant-suffix=_nofastcache", "--variant-suffix=_hardened"]
TMP_ROOT = os.environ.get("TEST_TMPDIR") or None
P = "//hakmem/core:"


def run(*argv):
    """(exit status, stdout, stderr) of layering.main(argv)."""
    out = io.StringIO()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            status = layering.main(list(argv), out=out, err=err)
        except SystemExit as exc:
            status = exc.code
    return status, out.getvalue(), err.getvalue()


def check(fixture, *extra):
    return run("check", "--query", os.path.join(DATA, fixture), "--root", TREE, *SUFFIXES, *extra)


def lib(name, srcs=(), hdrs=(), deps=(), includes=()):
    return layering.Target(
        P + name,
        "cc_library",
        srcs=[P + s for s in srcs],
        hdrs=[P + h for h in hdrs],
        deps=[P + d for d in deps],
        includes=includes,
    )


def model(*targets, suffixes=("", "_nofastcache", "_hardened")):
    return layering.Layering({t.label: t for t in targets}, "//hakmem/core", suffixes)


class CheckFixtureTest(unittest.TestCase):
    def test_clean_passes(self):
        status, out, err = check("clean.xml")
        self.assertEqual(status, 0, err)
        self.assertIn("25 libraries (7 boxes of the default variant)", out)
        self.assertEqual(err, "")

    def test_cycle_fails_and_prints_it(self):
        status, out, err = check("cycle.xml")
        self.assertEqual(status, 1)
        self.assertIn("dependency cycles among the default variant's libraries (1):", err)
        self.assertIn("dependency cycle: %slog -> %ssuperslab -> %slog" % (P, P, P), err)
        # Nothing else is wrong in the fixture.
        self.assertNotIn("includes of headers", err)
        self.assertNotIn("variant twins", err)

    def test_undeclared_include_names_file_include_and_target(self):
        status, out, err = check("undeclared_include.xml")
        self.assertEqual(status, 1)
        self.assertIn(
            'hakmem/core/slab.c:5: #include "os.h" in //hakmem/core:slab: hakmem/core/os.h '
            "is not in its srcs/hdrs nor in the hdrs of a direct dep; it is in the hdrs of "
            "//hakmem/core:os: add :os to the deps of :slab",
            err,
        )
        self.assertIn("includes of headers the target does not depend on (1):", err)
        self.assertNotIn("cycle", err)

    def test_variant_twin_on_another_variant_fails(self):
        status, out, err = check("variant_twin.xml")
        self.assertEqual(status, 1)
        self.assertIn("variant twins that differ from the default variant (2):", err)
        self.assertIn("%sslab_hardened depends on %sos, of the default variant" % (P, P), err)
        self.assertIn(
            "%sslab_hardened lacks dep %sos_hardened (%sslab depends on %sos)" % (P, P, P, P), err
        )

    def test_today_single_library_parses_and_passes(self):
        # Bazel's own XML for today's //hakmem/core: one library per variant,
        # every source in it. Only the shape is checked (its sources are not
        # in the fixture tree), so the include check is given an empty package.
        targets = layering.read_query(os.path.join(DATA, "core_single_library.xml"))
        self.assertEqual(
            sorted(targets),
            sorted(P + n + s for n in ("core", "override") for s in ("", "_nofastcache", "_hardened")),
        )
        core = targets[P + "core"]
        self.assertIn(P + "hakmem.c", core.srcs)
        self.assertIn(P + "include/hakmem.h", core.hdrs)
        self.assertEqual(core.includes, ["include"])
        self.assertEqual(targets[P + "override_hardened"].deps, [P + "core_hardened"])
        m = layering.Layering(targets, "//hakmem/core", ["", "_nofastcache", "_hardened"])
        self.assertEqual(layering.check_cycles(m), [])
        self.assertEqual(layering.check_variants(m), [])
        self.assertEqual(m.boxes(), [])

    def test_missing_source_is_reported(self):
        with tempfile.TemporaryDirectory(dir=TMP_ROOT) as tmp:
            root = os.path.join(tmp, "tree")
            shutil.copytree(TREE, root)
            os.remove(os.path.join(root, "hakmem/core/os.c"))
            status, _, err = run(
                "check", "--query", os.path.join(DATA, "clean.xml"), "--root", root, *SUFFIXES
            )
        self.assertEqual(status, 1)
        self.assertIn("hakmem/core/os.c (in //hakmem/core:os): cannot read it", err)

    def test_include_of_no_file_is_reported(self):
        with tempfile.TemporaryDirectory(dir=TMP_ROOT) as tmp:
            root = os.path.join(tmp, "tree")
            shutil.copytree(TREE, root)
            with open(os.path.join(root, "hakmem/core/log.c"), "a") as f:
                f.write('#include "stdio.h"\n')
            status, _, err = run(
                "check", "--query", os.path.join(DATA, "clean.xml"), "--root", root, *SUFFIXES
            )
        self.assertEqual(status, 1)
        self.assertIn(
            'hakmem/core/log.c:4: #include "stdio.h" in //hakmem/core:log: names no file', err
        )

    def test_variant_suffixes_from_variants_bzl(self):
        with tempfile.TemporaryDirectory(dir=TMP_ROOT) as tmp:
            root = os.path.join(tmp, "tree")
            shutil.copytree(TREE, root)
            with open(os.path.join(root, "hakmem/variants.bzl"), "w") as f:
                f.write(
                    'HAKMEM_VARIANTS = [\n    {"suffix": "", "x": 1},\n'
                    '    {"suffix": "_nofastcache"},\n    {\n        "suffix": "_hardened",\n    },\n]\n'
                )
            status, out, err = run("check", "--query", os.path.join(DATA, "clean.xml"), "--root", root)
            self.assertEqual(status, 0, err)
            os.remove(os.path.join(root, "hakmem/variants.bzl"))
            status, _, err = run("check", "--query", os.path.join(DATA, "clean.xml"), "--root", root)
            self.assertEqual(status, 2)
            self.assertIn("no --variant-suffix given", err)


class CycleTest(unittest.TestCase):
    def test_no_cycle(self):
        self.assertEqual(layering.find_cycles("abc", {"a": ["b", "c"], "b": ["c"]}), [])

    def test_self_loop(self):
        self.assertEqual(layering.find_cycles("ab", {"a": ["a", "b"]}), [["a", "a"]])

    def test_shortest_cycle_per_component_deterministic(self):
        edges = {
            "a": ["b"],
            "b": ["c", "a"],
            "c": ["a"],
            "x": ["y"],
            "y": ["z"],
            "z": ["x", "a"],
        }
        self.assertEqual(
            layering.find_cycles(edges.keys(), edges),
            [["a", "b", "a"], ["x", "y", "z", "x"]],
        )

    def test_components(self):
        edges = {"a": ["b", "c"], "b": ["a"], "c": ["a"], "d": ["d"]}
        components = []
        cycles = layering.find_cycles(edges.keys(), edges, components)
        self.assertEqual(cycles, [["a", "b", "a"], ["d", "d"]])
        self.assertEqual(components, [["a", "b", "c"], ["d"]])
        m = model(
            lib("a", deps=["b", "c"]), lib("b", deps=["a"]), lib("c", deps=["a"]), suffixes=[""]
        )
        self.assertEqual(
            layering.check_cycles(m),
            [
                "dependency cycle: //hakmem/core:a -> //hakmem/core:b -> //hakmem/core:a "
                "(one of the cycles among :a, :b, :c)"
            ],
        )

    def test_edges_outside_nodes_ignored(self):
        self.assertEqual(layering.find_cycles("ab", {"a": ["b", "q"], "q": ["a"]}), [])

    def test_long_chain_does_not_recurse(self):
        n = 5000
        edges = {i: [i + 1] for i in range(n)}
        edges[n] = [0]
        cycles = layering.find_cycles(range(n + 1), edges)
        self.assertEqual(len(cycles), 1)
        self.assertEqual(cycles[0][0], 0)
        self.assertEqual(len(cycles[0]), n + 2)


class IncludeTest(unittest.TestCase):
    def test_quoted_includes_skip_comments_and_system_headers(self):
        text = (
            '#include "a.h"\n'
            "#include <b.h>\n"
            '  #  include   "c/d.h"  // why\n'
            '// #include "e.h"\n'
            '/* #include "f.h"\n'
            '#include "g.h" */\n'
            'const char *s = "/*"; #include "h.h"\n'
            '#include "i.h"\n'
        )
        self.assertEqual(
            layering.quoted_includes(text), [(1, "a.h"), (3, "c/d.h"), (8, "i.h")]
        )

    def test_resolution_order(self):
        m = layering.Layering(
            layering.read_query(os.path.join(DATA, "clean.xml")),
            "//hakmem/core",
            ["", "_nofastcache", "_hardened"],
        )
        r = layering.Resolver(TREE, m)
        self.assertEqual(r.include_dirs, ["hakmem/core/include"])
        # Beside the including file.
        self.assertEqual(r.resolve("hakmem/core/slab.c", "os.h"), "hakmem/core/os.h")
        # Workspace-relative.
        self.assertEqual(r.resolve("hakmem/core/hakmem.c", "hakmem/core/slab.h"), "hakmem/core/slab.h")
        # An `includes` directory.
        self.assertEqual(r.resolve("hakmem/core/override.c", "hakmem.h"), "hakmem/core/include/hakmem.h")
        self.assertEqual(r.resolve("hakmem/core/include/hakmem.h", "../os.h"), "hakmem/core/os.h")
        self.assertIsNone(r.resolve("hakmem/core/os.c", "stdio.h"))
        self.assertIsNone(r.resolve("hakmem/core/os.c", "../../../../etc/passwd"))

    def test_private_header_of_a_dep_is_not_visible(self):
        with tempfile.TemporaryDirectory(dir=TMP_ROOT) as root:
            os.makedirs(os.path.join(root, "hakmem/core"))
            for name, text in {
                "a.h": "",
                "a_internal.h": "",
                "a.c": '#include "a.h"\n#include "a_internal.h"\n',
                "b.c": '#include "a.h"\n#include "a_internal.h"\n',
            }.items():
                with open(os.path.join(root, "hakmem/core", name), "w") as f:
                    f.write(text)
            m = model(
                lib("a", srcs=["a.c", "a_internal.h"], hdrs=["a.h"]),
                lib("b", srcs=["b.c"], deps=["a"]),
                suffixes=[""],
            )
            findings = layering.check_includes(m, root)
        self.assertEqual(len(findings), 1, findings)
        self.assertIn('hakmem/core/b.c:2: #include "a_internal.h" in //hakmem/core:b', findings[0])
        self.assertIn("no library has it in its hdrs", findings[0])


def write_tree(root, files):
    os.makedirs(os.path.join(root, "hakmem/core"), exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(root, "hakmem/core", name), "w") as f:
            f.write(text)


class UnusedTest(unittest.TestCase):
    def test_declared_names_by_shape(self):
        text = (
            "#pragma once\n#include \"types.h\"\n"
            "#define HAK_A 1\n#define HAK_F(x) (hak_calls_inside(x))\n"
            "typedef struct hak_s { int field; unsigned bits : 3; void (*hook)(int arg); } hak_s;\n"
            "enum hak_e { HAK_E0, HAK_E1 = 2, HAK_E2 };\n"
            "extern int hak_var HAK_INTERNAL;\nextern char hak_arr[4];\n"
            "hak_s *hak_get(size_t size, int flags) HAK_INTERNAL;\n"
            "static inline int hak_inline(int n) { int local = n; return hak_other(local); }\n"
            "// a comment naming hak_commented(\n"
            "static const char *const s = \"hak_in_string = 1;\";\n"
        )
        names = layering.declared_names(text)
        for name in ("HAK_A", "HAK_F", "hak_s", "field", "bits", "hook", "hak_e", "HAK_E0",
                     "HAK_E1", "hak_var", "hak_arr", "hak_get", "hak_inline", "s"):
            self.assertIn(name, names)
        # Parameters, locals, calls in bodies and macros, comments, strings, keywords.
        for name in ("arg", "size", "flags", "local", "n", "hak_other", "hak_calls_inside",
                     "hak_commented", "hak_in_string", "int", "size_t", "types"):
            self.assertNotIn(name, names)

    def check_tree(self, files, *libs):
        with tempfile.TemporaryDirectory(dir=TMP_ROOT) as root:
            write_tree(root, files)
            return layering.check_unused(model(*libs, suffixes=[""]), root)

    def test_unused_include_and_unused_dep(self):
        files = {
            "types.h": "#pragma once\n#define HAK_INTERNAL __attribute__((visibility(\"hidden\")))\n",
            "a.h": '#pragma once\n#include "types.h"\nint hak_a(void) HAK_INTERNAL;\n',
            "b.h": '#pragma once\n#include "types.h"\nextern int hak_b_count HAK_INTERNAL;\n',
            "c.c": '#include "a.h"\n#include "b.h"\nint hak_c(void) { return hak_a(); }\n',
        }
        libs = (lib("types", hdrs=["types.h"]), lib("a", hdrs=["a.h"], deps=["types"]),
                lib("b", hdrs=["b.h"], deps=["types"]), lib("d", hdrs=["types.h"]))
        findings = self.check_tree(files, *libs, lib("c", srcs=["c.c"], deps=["a", "b", "d"]))
        self.assertEqual(len(findings), 2, findings)
        # b.h is included but nothing of it is used (HAK_INTERNAL is types.h's).
        self.assertIn('hakmem/core/c.c:2: #include "b.h" in :c: nothing hakmem/core/b.h declares', findings[0])
        self.assertIn(":c depends on :d, but no file of it includes a header of :d", findings[1])
        # Used through an attributed variable: no finding for b.h.
        files["c.c"] += "int hak_c2(void) { return hak_b_count; }\n"
        findings = self.check_tree(files, *libs, lib("c", srcs=["c.c"], deps=["a", "b"]))
        self.assertEqual(findings, [])

    def test_aggregates_and_external_deps_are_not_checked(self):
        files = {"a.h": "int hak_a(void);\n"}
        m = model(
            lib("a", hdrs=["a.h"]),
            lib("core", deps=["a"]),
            layering.Target(P + "ext", "cc_library", deps=["@com_google_absl//absl/base"]),
            suffixes=[""],
        )
        with tempfile.TemporaryDirectory(dir=TMP_ROOT) as root:
            write_tree(root, files)
            self.assertEqual(layering.check_unused(m, root), [])


class PrefixTest(unittest.TestCase):
    def test_exported_names_by_shape(self):
        text = (
            "#pragma once\n#define HAK_X_M(a) hak_called(a)\n"
            "typedef struct hak_x_s { void (*hook)(int arg); } hak_x_s;\n"
            "typedef int (*hak_x_fn)(void *arg);\n"
            "extern int hak_x_var HAK_INTERNAL;\nextern HAK_ATOMIC(int) hak_x_arr[4] HAK_INTERNAL;\n"
            "extern __typeof(hak_malloc) hak_x_alias HAK_INTERNAL;\n"
            "void hak_x_log(const char *f, ...) __attribute__((format(printf, 1, 2)));\n"
            "static inline int hak_x_inline(int n) { return hak_other(n); }\n"
        )
        self.assertEqual(
            layering.exported_names(text),
            {"hak_x_var", "hak_x_arr", "hak_x_alias", "hak_x_log", "hak_x_inline"},
        )

    def test_names_not_prefixed_by_their_header(self):
        files = {
            "types.h": "#pragma once\nextern int hak_tls;\n",
            "page_arena.h": '#pragma once\nvoid hak_page_arena_free(void *p);\n'
                            'void *hak_arena_alloc(unsigned long n);\nextern int hak_pages;\n',
            "page_arena_inl.h": "#pragma once\nstatic inline int hak_page_arena_inl_one(void) { return 1; }\n",
        }
        m = model(lib("types", hdrs=["types.h"]),
                  lib("page_arena", hdrs=["page_arena.h", "page_arena_inl.h"], deps=["types"]),
                  suffixes=[""])
        with tempfile.TemporaryDirectory(dir=TMP_ROOT) as root:
            write_tree(root, files)
            findings = layering.check_prefixes(m, root)
        self.assertEqual(len(findings), 2, findings)
        self.assertIn("page_arena.h declares hak_arena_alloc: the names of :page_arena start "
                      "with hak_page_arena_", findings[0])
        self.assertIn("declares hak_pages", findings[1])


class VariantTest(unittest.TestCase):
    def test_missing_twin(self):
        m = model(
            lib("os"),
            lib("os_hardened"),
            lib("log"),
            lib("log_nofastcache"),
            lib("log_hardened"),
        )
        self.assertEqual(
            layering.check_variants(m),
            ["//hakmem/core:os has no twin //hakmem/core:os_nofastcache (other variants of it exist)"],
        )

    def test_twin_without_default(self):
        m = model(lib("os_hardened"))
        self.assertEqual(
            layering.check_variants(m),
            ["//hakmem/core:os_hardened has no default-variant library //hakmem/core:os"],
        )

    def test_twins_on_other_variants(self):
        m = model(
            lib("types"),
            lib("log", deps=["types"]),
            lib("log_nofastcache", deps=["types"]),
            lib("log_hardened", deps=["types", "log_nofastcache"]),
            lib("os", deps=["log_hardened"]),
            lib("os_nofastcache", deps=["log_nofastcache"]),
            lib("os_hardened", deps=["log_hardened"]),
        )
        self.assertEqual(
            layering.check_variants(m),
            [
                "//hakmem/core:log_hardened depends on //hakmem/core:log_nofastcache, "
                "of variant _nofastcache",
                "//hakmem/core:os (default variant) depends on //hakmem/core:log_hardened, "
                "of variant _hardened",
            ],
        )

    def test_twin_with_extra_and_missing_deps(self):
        m = model(
            lib("types"),
            lib("log"),
            lib("log_nofastcache"),
            lib("log_hardened"),
            lib("os", deps=["log"]),
            lib("os_nofastcache", deps=["log_nofastcache", "types"]),
            lib("os_hardened"),
        )
        self.assertEqual(
            layering.check_variants(m),
            [
                "//hakmem/core:os_nofastcache depends on //hakmem/core:types, "
                "but //hakmem/core:os has no such dep",
                "//hakmem/core:os_hardened lacks dep //hakmem/core:log_hardened "
                "(//hakmem/core:os depends on //hakmem/core:log)",
            ],
        )

    def test_variant_free_library_must_not_pick_a_variant(self):
        m = model(lib("types", deps=["log"]), lib("log"), lib("log_hardened"), suffixes=["", "_hardened"])
        self.assertEqual(
            layering.check_variants(m),
            ["//hakmem/core:types has no variant twins but depends on //hakmem/core:log, which has"],
        )


class GraphTest(unittest.TestCase):
    def graph(self, fixture="clean.xml"):
        return run("graph", "--query", os.path.join(DATA, fixture), *SUFFIXES)

    def test_graph_of_clean(self):
        status, out, err = self.graph()
        self.assertEqual(status, 0, err)
        self.assertIn("```mermaid\ngraph TD\n    api\n    slab\n    superslab\n", out)
        # Transitive reduction: slab -> os is left to superslab -> os.
        self.assertIn("    slab --> superslab\n    slab --> size_class\n    superslab --> os\n", out)
        self.assertNotIn("\n    slab --> os\n", out)
        self.assertNotIn("core", out.split("```mermaid")[1])
        self.assertIn("| 3 | `slab` | `os`, `size_class`, `superslab`, `types` |\n", out)
        self.assertIn("| 0 | `types` | none |\n", out)
        self.assertTrue(out.endswith("| 0 | `types` | none |\n"))
        self.assertEqual(out, self.graph()[1])

    def test_graph_refuses_a_cycle(self):
        status, _, err = self.graph("cycle.xml")
        self.assertEqual(status, 2)
        self.assertIn("cycle", err)

    def test_graph_without_boxes(self):
        status, out, err = self.graph("core_single_library.xml")
        self.assertEqual(status, 0, err)
        self.assertIn("No box libraries yet", out)
        self.assertNotIn("mermaid", out)

    def test_floors_and_reduction(self):
        edges = {"a": ["b", "c", "d"], "b": ["c"], "c": ["d"], "d": []}
        self.assertEqual(layering.floors(edges, edges), {"a": 3, "b": 2, "c": 1, "d": 0})
        self.assertEqual(
            layering.transitive_reduction(edges), {"a": ["b"], "b": ["c"], "c": ["d"], "d": []}
        )

    def test_mermaid_node_names(self):
        self.assertEqual(layering.mermaid_node("slab"), "slab")
        self.assertEqual(layering.mermaid_node("end"), 'n_end["end"]')
        self.assertEqual(layering.mermaid_node("a-b"), 'n_a_b["a-b"]')


DOC = """# Title

Text before.

%s
old text
%s

Text after.
""" % (layering.BEGIN_MARKER, layering.END_MARKER)


class DocsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=TMP_ROOT)
        self.doc = os.path.join(self.tmp, "docs", "ARCHITECTURE.md")
        os.makedirs(os.path.dirname(self.doc))
        with open(self.doc, "w") as f:
            f.write(DOC)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def docs_check(self):
        return run(
            "docs-check", "--query", os.path.join(DATA, "clean.xml"), "--root", self.tmp,
            "--doc", "docs/ARCHITECTURE.md", *SUFFIXES,
        )

    def test_stale_then_written_then_clean(self):
        status, _, err = self.docs_check()
        self.assertEqual(status, 1)
        self.assertIn("docs/ARCHITECTURE.md: the generated layering graph is out of date", err)
        self.assertIn("    " + layering.REGENERATE_COMMAND + "\n", err)
        self.assertIn("-old text\n", err)
        self.assertIn("+| 0 | `types` | none |\n", err)

        status, out, err = run(
            "graph", "--query", os.path.join(DATA, "clean.xml"), "--write", self.doc, *SUFFIXES
        )
        self.assertEqual(status, 0, err)
        self.assertIn("updated", out)
        with open(self.doc) as f:
            text = f.read()
        self.assertTrue(text.startswith("# Title\n\nText before.\n\n%s\n\nThe boxes" % layering.BEGIN_MARKER))
        self.assertTrue(text.endswith("| 0 | `types` | none |\n\n%s\n\nText after.\n" % layering.END_MARKER))
        self.assertNotIn("old text", text)

        status, out, err = self.docs_check()
        self.assertEqual(status, 0, err)
        self.assertIn("matches bazel query", out)

        # Writing again changes nothing.
        status, out, _ = run(
            "graph", "--query", os.path.join(DATA, "clean.xml"), "--write", self.doc, *SUFFIXES
        )
        self.assertIn("already up to date", out)

    def test_write_is_relative_to_the_workspace_under_bazel_run(self):
        old = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
        os.environ["BUILD_WORKSPACE_DIRECTORY"] = self.tmp
        try:
            status, out, err = run(
                "graph", "--query", os.path.join(DATA, "clean.xml"),
                "--write", "docs/ARCHITECTURE.md", *SUFFIXES,
            )
        finally:
            if old is None:
                del os.environ["BUILD_WORKSPACE_DIRECTORY"]
            else:
                os.environ["BUILD_WORKSPACE_DIRECTORY"] = old
        self.assertEqual(status, 0, err)
        self.assertEqual(self.docs_check()[0], 0)

    def test_missing_markers(self):
        with open(self.doc, "w") as f:
            f.write("# No section\n")
        status, _, err = self.docs_check()
        self.assertEqual(status, 2)
        self.assertIn("has no line " + layering.BEGIN_MARKER, err)
        with open(self.doc, "w") as f:
            f.write(layering.BEGIN_MARKER + "\n")
        status, _, err = self.docs_check()
        self.assertEqual(status, 2)
        self.assertIn("after its BEGIN marker", err)


class ArgumentTest(unittest.TestCase):
    def test_usage_errors(self):
        for argv in ([], ["frobnicate"], ["check"], ["docs-check", "--query", "q.xml"]):
            status, _, err = run(*argv)
            self.assertEqual(status, 2, argv)
            self.assertIn("usage: layering.py", err)

    def test_bad_query(self):
        with tempfile.NamedTemporaryFile("w", suffix=".xml", dir=TMP_ROOT) as f:
            f.write("not xml")
            f.flush()
            status, _, err = run("check", "--query", f.name, *SUFFIXES)
        self.assertEqual(status, 2)
        self.assertIn("query output is not XML", err)
        status, _, err = run("check", "--query", "/nonexistent.xml", *SUFFIXES)
        self.assertEqual(status, 2)
        self.assertIn("cannot read the query output /nonexistent.xml", err)

    def test_default_suffix_required(self):
        status, _, err = run(
            "check", "--query", os.path.join(DATA, "clean.xml"), "--variant-suffix=_hardened"
        )
        self.assertEqual(status, 2)
        self.assertIn('suffix "" is not among', err)

    def test_command_line(self):
        # The script itself, as run_python.sh starts it.
        proc = subprocess.run(
            [sys.executable, os.path.join(HERE, "layering.py"), "check",
             "--query", os.path.join(DATA, "undeclared_include.xml"), "--root", TREE] + SUFFIXES,
            capture_output=True, text=True,
        )
        self.assertEqual(proc.returncode, 1)
        self.assertIn('#include "os.h" in //hakmem/core:slab', proc.stderr)
        proc = subprocess.run(
            [sys.executable, os.path.join(HERE, "layering.py"), "--bogus"],
            capture_output=True, text=True,
        )
        self.assertEqual(proc.returncode, 2)
        self.assertTrue(proc.stderr.startswith("usage: layering.py"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
