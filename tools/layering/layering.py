#!/usr/bin/env python3
"""The layering of hakmem's core boxes, checked from `bazel query --output=xml`.

    layering.py check      --query Q.xml [--root DIR] [options]
    layering.py graph      --query Q.xml [--write FILE] [options]
    layering.py docs-check --query Q.xml --doc FILE [--root DIR] [options]

Q.xml is what //tools/layering:core_graph (a genquery) writes: every
cc_library of //hakmem/core with its srcs, hdrs, deps and includes. By hand:

    bazel query --output=xml "filter('^//hakmem/core:', kind('cc_library', \\
        deps(//hakmem/core:core + //hakmem/core:override)))" > /tmp/q.xml

check fails (exit 1) when
  - the deps among the default variant's libraries of the package have a
    cycle (printed);
  - a .c/.h of a default-variant library has `#include "x.h"` naming a header
    that is neither in that library's own srcs/hdrs nor in the hdrs of one of
    its direct deps (a dep of a dep does not count), or naming no file at all;
  - a variant twin (name + suffix, e.g. slab_hardened) is missing, or its deps
    are not the default's deps with the same suffix (so no box of one variant
    links a box of another).
  - a default-variant library declares a dep of the package none of whose
    hdrs any of its files includes, or a file includes a header of the
    package nothing of which it uses (the names a header declares are found
    by their shape: macros, tags, typedefs, enum constants, functions,
    variables and fields; an unrecognised declaration only hides a finding);
  - a box header (other than types.h, hakmem.h and box_test_util.h) declares a function or an extern
    variable whose name does not start with hak_<the header's name>_, so that
    every name leads to its file.
graph prints the default variant's boxes (libraries other than the aggregates
such as :core and :override) as a Markdown section: a mermaid flowchart and a
table of floors and direct deps. docs-check compares that with the section of
a Markdown file between the BEGIN/END markers below.

Exit status: 0 clean, 1 findings, 2 bad arguments or unreadable input.
Standard library only.
"""

import argparse
import difflib
import os
import re
import sys
import xml.etree.ElementTree as ET

BEGIN_MARKER = "<!-- BEGIN generated: bazel query layering graph -->"
END_MARKER = "<!-- END generated: bazel query layering graph -->"
REGENERATE_COMMAND = "bazel run //tools/layering:graph -- --write docs/ARCHITECTURE.md"
DEFAULT_PACKAGE = "//hakmem/core"
DEFAULT_AGGREGATES = ("core", "override")
# Where the variant suffixes are defined (HAKMEM_VARIANTS, field "suffix"),
# read when --variant-suffix is not given.
VARIANTS_BZL = "hakmem/variants.bzl"
SCANNED_EXTENSIONS = (".c", ".h")
# Quoted includes only: `#include <...>` is a system header and not checked.
INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"\n]+)"', re.MULTILINE)


class InputError(Exception):
    """Input that cannot be used (exit status 2)."""


# ---- labels ------------------------------------------------------------------


def split_label(label):
    """'@r//a/b:c' -> ('r', 'a/b', 'c'); '//a/b' -> ('', 'a/b', 'b')."""
    repo = ""
    rest = label
    if rest.startswith("@"):
        repo, sep, rest = rest[1:].partition("//")
        if not sep:
            raise InputError("not a label: %r" % label)
        rest = "//" + rest
    if not rest.startswith("//"):
        raise InputError("not an absolute label: %r" % label)
    package, sep, name = rest[2:].partition(":")
    if not sep:
        name = package.rsplit("/", 1)[-1]
    return repo, package, name


def label_path(label):
    """Workspace-relative path of a source file label; None if external."""
    repo, package, name = split_label(label)
    if repo:
        return None
    return name if not package else package + "/" + name


def normalize_package(package):
    """'//hakmem/core', 'hakmem/core' or '//hakmem/core:' -> 'hakmem/core'."""
    package = package.strip()
    if package.startswith("//"):
        package = package[2:]
    return package.rstrip(":").strip("/")


# ---- the query output ----------------------------------------------------------


class Target:
    """One rule of the query output, with the attributes that matter here."""

    def __init__(self, label, kind, srcs=(), hdrs=(), deps=(), includes=()):
        self.label = label
        self.kind = kind
        self.srcs = list(srcs)
        self.hdrs = list(hdrs)
        self.deps = list(deps)
        self.includes = list(includes)

    def __repr__(self):
        return "Target(%r, %r)" % (self.label, self.kind)


def parse_query_xml(data):
    """{label: Target} from `bazel query --output=xml` (bytes or str).

    hdrs and textual_hdrs both count as hdrs. A select() in an attribute shows
    up in the XML as the concatenation of all its branches, so every branch
    counts: deps under any configuration are deps here.
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise InputError("query output is not XML: %s" % exc) from None
    if root.tag != "query":
        raise InputError("query output: root element is <%s>, want <query>" % root.tag)
    targets = {}
    for rule in root.iter("rule"):
        label = rule.get("name")
        kind = rule.get("class")
        if not label or not kind:
            raise InputError("query output: a <rule> without name or class")
        lists = {}
        for lst in rule.findall("list"):
            values = []
            for item in lst:
                value = item.get("value")
                if value is not None:
                    values.append(value)
            lists[lst.get("name")] = values
        targets[label] = Target(
            label,
            kind,
            srcs=lists.get("srcs", []),
            hdrs=lists.get("hdrs", []) + lists.get("textual_hdrs", []),
            deps=lists.get("deps", []),
            includes=lists.get("includes", []),
        )
    return targets


def read_query(path):
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as exc:
        raise InputError("cannot read the query output %s: %s" % (path, exc.strerror)) from None
    return parse_query_xml(data)


def suffixes_from_variants_bzl(root):
    """The "suffix" fields of HAKMEM_VARIANTS in <root>/hakmem/variants.bzl."""
    path = os.path.join(root, VARIANTS_BZL)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        raise InputError(
            "no --variant-suffix given and %s cannot be read; pass every suffix, "
            'the default variant\'s too (--variant-suffix "")' % path
        ) from None
    found = re.findall(r'"suffix"\s*:\s*"([^"]*)"', text)
    if "" not in found:
        raise InputError("%s names no default variant (suffix \"\")" % path)
    return found


# ---- the model -------------------------------------------------------------------


class Layering:
    """The cc_libraries of one package, sorted into variants and roles."""

    def __init__(self, targets, package=DEFAULT_PACKAGE, suffixes=("",),
                 aggregates=DEFAULT_AGGREGATES):
        self.targets = targets
        self.package = normalize_package(package)
        self.suffixes = sorted(set(suffixes) - {""}, key=lambda s: (-len(s), s))
        self.libs = {
            label: t
            for label, t in targets.items()
            if t.kind == "cc_library" and self.in_package(label)
        }
        self.aggregates = set(aggregates)
        # Bases (names without suffix) that have at least one variant twin.
        self.varied = set()
        for label in self.libs:
            base, suffix = self.split_variant(label)
            if suffix:
                self.varied.add(base)

    def in_package(self, label):
        repo, package, _ = split_label(label)
        return not repo and package == self.package

    def split_variant(self, label):
        """(base name, suffix) of a label of the package: ':os_hardened' -> ('os', '_hardened')."""
        name = split_label(label)[2]
        for suffix in self.suffixes:
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)], suffix
        return name, ""

    def label(self, name):
        return "//%s:%s" % (self.package, name)

    def default_libs(self):
        """Labels of the default variant's libraries (and variant-free ones), sorted."""
        return sorted(label for label in self.libs if self.split_variant(label)[1] == "")

    def boxes(self):
        """Default-variant libraries that are not aggregates, sorted."""
        return [
            label
            for label in self.default_libs()
            if self.split_variant(label)[0] not in self.aggregates
        ]

    def files(self, labels, seen=None):
        """Workspace paths of labels in srcs/hdrs; a filegroup in the query is expanded."""
        out = []
        seen = set() if seen is None else seen
        for label in labels:
            if label in seen:
                continue
            seen.add(label)
            target = self.targets.get(label)
            if target is not None and target.kind == "filegroup":
                out.extend(self.files(target.srcs, seen))
                continue
            path = label_path(label)
            if path is not None:
                out.append(path)
        return out


# ---- check: cycles -------------------------------------------------------------


def find_cycles(nodes, edges, components_out=None):
    """One cycle (a list of nodes, first == last) per strongly connected
    component that has one, in a deterministic order. If components_out is a
    list, each cycle's whole component (sorted) is appended to it.

    nodes: iterable of hashable, sortable nodes; edges: {node: [node, ...]}.
    Tarjan's algorithm, iterative; then a shortest cycle inside each component
    through its smallest node, found by breadth-first search.
    """
    nodes = sorted(set(nodes))
    members_all = set(nodes)
    succ = {n: sorted(set(m for m in edges.get(n, ()) if m in members_all)) for n in nodes}
    index = {}
    low = {}
    on_stack = set()
    stack = []
    components = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            children = succ[node]
            while i < len(children):
                child = children[i]
                i += 1
                if child not in index:
                    work.append((node, i))
                    work.append((child, 0))
                    recurse = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if recurse:
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    cycles = []
    for component in sorted(components):
        members = set(component)
        first = component[0]
        if len(component) == 1 and first not in succ[first]:
            continue
        # Shortest path first -> ... -> first inside the component.
        previous = {}
        queue = [first]
        found = None
        while queue and found is None:
            next_queue = []
            for node in queue:
                for child in succ[node]:
                    if child not in members:
                        continue
                    if child == first:
                        found = node
                        break
                    if child not in previous:
                        previous[child] = node
                        next_queue.append(child)
                if found is not None:
                    break
            queue = next_queue
        path = [first]
        node = found
        while node != first:
            path.append(node)
            node = previous[node]
        path.append(first)
        # path is first <- ... read backwards: reverse the middle.
        cycle = [first] + list(reversed(path[1:-1])) + [first]
        cycles.append(cycle)
        if components_out is not None:
            components_out.append(component)
    return cycles


def dep_edges(layering, labels):
    """{label: [direct deps among labels]}."""
    members = set(labels)
    return {
        label: sorted(set(d for d in layering.libs[label].deps if d in members))
        for label in labels
    }


def check_cycles(layering):
    labels = layering.default_libs()
    findings = []
    components = []
    cycles = find_cycles(labels, dep_edges(layering, labels), components)
    for cycle, component in zip(cycles, components):
        finding = "dependency cycle: " + " -> ".join(cycle)
        if len(component) > len(cycle) - 1:
            # Breaking this cycle alone may leave others among these.
            finding += " (one of the cycles among %s)" % ", ".join(
                short(layering, c) for c in component
            )
        findings.append(finding)
    return findings


# ---- check: includes -------------------------------------------------------------


def strip_comments(text):
    """C source with comments replaced by spaces (newlines kept), literals kept."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "/" and i + 1 < n and text[i + 1] == "*":
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c == "/" and i + 1 < n and text[i + 1] == "/":
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def quoted_includes(text):
    """[(line number, name)] of the `#include "name"` lines of C source text."""
    clean = strip_comments(text)
    return [
        (clean.count("\n", 0, m.start()) + 1, m.group(1))
        for m in INCLUDE_RE.finditer(clean)
    ]


class Resolver:
    """Finds the file a quoted include names, the way the compiler would look:
    the including file's directory, then the workspace root (Bazel's -iquote .),
    then the `includes` directories of the package's libraries (include/ for
    "hakmem.h"). A file counts as there if it is under root or is named in the
    srcs/hdrs of some target of the query.
    """

    def __init__(self, root, layering):
        self.root = root
        self.declared = set()
        include_dirs = set()
        for label, target in layering.targets.items():
            self.declared.update(layering.files(target.srcs + target.hdrs))
            repo, package, _ = split_label(label)
            if repo:
                continue
            for inc in target.includes:
                include_dirs.add(os.path.normpath(os.path.join(package, inc)))
        self.include_dirs = sorted(include_dirs)

    def exists(self, path):
        return path in self.declared or os.path.isfile(os.path.join(self.root, path))

    def resolve(self, including, name):
        candidates = [os.path.join(os.path.dirname(including), name), name]
        candidates += [os.path.join(d, name) for d in self.include_dirs]
        for candidate in candidates:
            path = os.path.normpath(candidate)
            if path.startswith("..") or os.path.isabs(path):
                continue
            if self.exists(path):
                return path
        return None


def short(layering, label):
    """':os' for a label of the package, the label otherwise."""
    if label.startswith("//") and layering.in_package(label):
        return ":" + split_label(label)[2]
    return label


def check_includes(layering, root):
    """Findings for quoted includes of headers outside own srcs/hdrs and direct deps' hdrs."""
    resolver = Resolver(root, layering)
    # Who exports each header (for the hint), default variant first.
    exporters = {}
    for label in sorted(layering.libs, key=lambda l: (layering.split_variant(l)[1] != "", l)):
        for path in layering.files(layering.libs[label].hdrs):
            exporters.setdefault(path, []).append(label)
    findings = []
    for label in layering.default_libs():
        target = layering.libs[label]
        own = layering.files(target.srcs + target.hdrs)
        visible = set(own)
        for dep in target.deps:
            dep_target = layering.targets.get(dep)
            if dep_target is not None:
                visible.update(layering.files(dep_target.hdrs))
        for path in sorted(set(own)):
            if not path.endswith(SCANNED_EXTENSIONS):
                continue
            try:
                with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
                    text = f.read()
            except OSError:
                findings.append(
                    "%s (in %s): cannot read it under %s; is it in the test's data?"
                    % (path, label, root)
                )
                continue
            for line, name in quoted_includes(text):
                where = '%s:%d: #include "%s"' % (path, line, name)
                header = resolver.resolve(path, name)
                if header is None:
                    findings.append(
                        "%s in %s: names no file of the tree (use <...> for system headers)"
                        % (where, label)
                    )
                    continue
                if header in visible:
                    continue
                owners = exporters.get(header, [])
                # Name the default variant's owners only (the twins say the same).
                owners = [o for o in owners if not layering.split_variant(o)[1]] or owners
                if owners:
                    hint = "it is in the hdrs of %s: add %s to the deps of %s" % (
                        ", ".join(owners),
                        short(layering, owners[0]),
                        short(layering, label),
                    )
                else:
                    hint = "no library has it in its hdrs"
                findings.append(
                    "%s in %s: %s is not in its srcs/hdrs nor in the hdrs of a direct dep; %s"
                    % (where, label, header, hint)
                )
    return findings


# ---- check: declared but unused -------------------------------------------------

# The names a header declares, found by shape, not by parsing: a miss only makes
# an include look used, so the check errs towards silence, never a false finding.
C_KEYWORDS = frozenset(
    """auto break case char const continue default do double else enum extern float for
    goto if inline int long register restrict return short signed sizeof static struct
    switch typedef union unsigned void volatile while _Alignas _Alignof _Atomic _Bool
    _Noreturn _Static_assert _Thread_local bool true false defined __attribute__
    __typeof__ typeof asm __asm__ __extension__""".split()
)
DECLARED_RES = (
    re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)", re.MULTILINE),  # macros
    re.compile(r"\b(?:struct|union|enum)[ \t\n]+(\w+)[ \t\n]*\{"),  # tags
    re.compile(r"\}[ \t\n]*(\w+)[ \t\n]*(?:\[[^\]]*\][ \t\n]*)*[;,=]"),  # typedef'd or declared after a body
    re.compile(r"(\w+)[ \t\n]*(?:\[[^\];]*\][ \t\n]*)*(?::[ \t\n]*\w+[ \t\n]*)?[;,=]"),  # variables, fields, typedef names
    re.compile(r"\([ \t\n]*\*[ \t\n]*(\w+)[ \t\n]*\)[ \t\n]*\("),  # function pointers
    re.compile(r"(\w+)[ \t\n]*\("),  # functions
    re.compile(r"\benum\b[^{;]*\{[ \t\n]*(\w+)"),  # the first enum constant
)
IDENT_RE = re.compile(r"\b[A-Za-z_]\w*\b")
STRING_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def code_of(text):
    """C source without comments, string literals or #include lines."""
    clean = STRING_RE.sub('""', strip_comments(text))
    return INCLUDE_RE.sub("", clean)


# `extern int x HAK_INTERNAL;`: a name, then attribute macros (their parentheses gone).
ATTRIBUTED_RE = re.compile(
    r"\b(\w+)[ \t\n]*(?:\[[^\];]*\][ \t\n]*)*(?:\b(?:[A-Z_][A-Z0-9_]*|__attribute__)\b[ \t\n]*)+[;,=]"
)
PAREN_RE = re.compile(r"\([^()]*\)")
DIRECTIVE_RE = re.compile(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", re.MULTILINE)


def without_function_bodies(code):
    """code with each function body (a brace after a closing parenthesis) made ';'."""
    out = []
    last = ""  # the last non-blank character written
    i = 0
    while i < len(code):
        c = code[i]
        if c == "{" and last == ")":
            depth = 0
            while i < len(code):
                depth += {"{": 1, "}": -1}.get(code[i], 0)
                i += 1
                if depth == 0:
                    break
            out.append(";")
            last = ";"
            continue
        out.append(c)
        if not c.isspace():
            last = c
        i += 1
    return "".join(out)


def declared_names(text):
    """Identifiers a header declares or defines (approximately; see DECLARED_RES)."""
    code = code_of(text)
    names = set(m.group(1) for m in DECLARED_RES[0].finditer(code))
    # Macro bodies and function bodies use names; they declare none.
    code = without_function_bodies(DIRECTIVE_RE.sub("", code))
    for regex in DECLARED_RES[1:3] + DECLARED_RES[4:]:
        names.update(m.group(1) for m in regex.finditer(code))
    # Variables and fields outside parentheses: a parameter's name is not the header's.
    while True:
        flat = PAREN_RE.sub(" ", code)
        if flat == code:
            break
        code = flat
    names.update(m.group(1) for m in DECLARED_RES[3].finditer(code))
    names.update(m.group(1) for m in ATTRIBUTED_RE.finditer(code))
    return {n for n in names if not n.isdigit() and n not in C_KEYWORDS}


def used_names(text):
    return set(IDENT_RE.findall(code_of(text)))


def check_unused(layering, root):
    """Findings for declared deps no file includes, and includes nothing of which is used."""
    resolver = Resolver(root, layering)
    texts = {}

    def text_of(path):
        if path not in texts:
            try:
                with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
                    texts[path] = f.read()
            except OSError:
                texts[path] = None  # check_includes reports it
        return texts[path]

    names = {}

    def own_names(header, seen=()):
        """What header declares less what the headers it includes declare (HAK_INTERNAL)."""
        if header not in names:
            names[header] = set()  # an include cycle ends here
            text = text_of(header) or ""
            declared = declared_names(text)
            for _, name in quoted_includes(text):
                below = resolver.resolve(header, name)
                if below is not None and below != header:
                    own_names(below)
                    declared -= names[below] | below_names.get(below, set())
                    below_names.setdefault(header, set()).update(
                        names[below] | below_names.get(below, set()))
            names[header] = declared
        return names[header]

    below_names = {}
    findings = []
    for label in layering.default_libs():
        target = layering.libs[label]
        own = [p for p in sorted(set(layering.files(target.srcs + target.hdrs)))
               if p.endswith(SCANNED_EXTENSIONS)]
        included = set()
        for path in own:
            text = text_of(path)
            if text is None:
                continue
            used = used_names(text)
            for line, name in quoted_includes(text):
                header = resolver.resolve(path, name)
                if header is None:
                    continue
                included.add(header)
                if header == path or text_of(header) is None:
                    continue
                declared = own_names(header)
                if declared and not (declared & used):
                    findings.append(
                        '%s:%d: #include "%s" in %s: nothing %s declares is used here; remove it'
                        % (path, line, name, short(layering, label), header)
                    )
        if layering.split_variant(label)[0] in layering.aggregates:
            continue  # an aggregate gathers boxes; it includes nothing of them
        for dep in target.deps:
            dep_target = layering.libs.get(dep)
            if dep_target is None:
                continue
            if not set(layering.files(dep_target.hdrs)) & included:
                findings.append(
                    "%s depends on %s, but no file of it includes a header of %s; remove the dep"
                    % (short(layering, label), short(layering, dep), short(layering, dep))
                )
    return findings


# ---- check: names lead to files -------------------------------------------------

# Headers whose names are not one box's: the shared structures, the public API
# (hak_malloc, ...) and the box tests' C++ helpers.
DEFAULT_PREFIX_EXEMPT = ("types.h", "hakmem.h", "box_test_util.h")
FUNCTION_RE = re.compile(r"\b([A-Za-z_]\w*)[ \t\n]*\((?![ \t\n]*\*)")
ATTRIBUTE_RE = re.compile(r"\b(?:__attribute__|__typeof__|__typeof|typeof|_Alignas|alignas)[ \t\n]*\(")
EXTERN_NAME_RE = re.compile(
    r"\bextern\b[^;]*?\b([A-Za-z_]\w*)[ \t\n]*(?:\[[^\];]*\][ \t\n]*)*"
    r"(?:\b[A-Z_][A-Z0-9_]*\b[ \t\n]*)*;"
)


def without_attributes(code):
    """code with each __attribute__((...)), __typeof(...) and the like made a space."""
    out = []
    i = 0
    while True:
        m = ATTRIBUTE_RE.search(code, i)
        if not m:
            out.append(code[i:])
            return "".join(out)
        out.append(code[i:m.start()] + " ")
        j, depth = m.end(), 1
        while j < len(code) and depth:
            depth += {"(": 1, ")": -1}.get(code[j], 0)
            j += 1
        i = j


def exported_names(text):
    """Functions and extern variables a header declares or defines (not types, macros, fields)."""
    code = without_attributes(without_function_bodies(DIRECTIVE_RE.sub("", code_of(text))))
    names = {m.group(1) for m in FUNCTION_RE.finditer(code)}
    names |= {m.group(1) for m in EXTERN_NAME_RE.finditer(code)}
    return {
        n for n in names
        if n not in C_KEYWORDS and not n.startswith("__") and n != "_Static_assert"
        and not n.isupper()  # a macro's invocation
    }


def check_prefixes(layering, root, exempt=DEFAULT_PREFIX_EXEMPT):
    """Findings for a function or variable of a box header not named hak_<header>_."""
    findings = []
    seen = set()
    for label in layering.boxes():
        target = layering.libs[label]
        for path in sorted(set(layering.files(target.hdrs))):
            base = os.path.basename(path)
            if not base.endswith(".h") or base in exempt or path in seen:
                continue
            seen.add(path)
            try:
                with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
                    text = f.read()
            except OSError:
                continue  # check_includes reports it
            prefix = "hak_%s_" % base[:-2]
            for name in sorted(exported_names(text)):
                if not name.startswith(prefix):
                    findings.append(
                        "%s declares %s: the names of %s start with %s (its file's name)"
                        % (path, name, short(layering, label), prefix)
                    )
    return findings


# ---- check: variant twins ----------------------------------------------------------


def check_variants(layering):
    """Findings for variant twins whose deps differ from the default's (modulo suffix)."""
    findings = []
    libs = layering.libs

    def twin(dep, suffix):
        """What a twin of suffix should depend on where the default depends on dep."""
        if not layering.in_package(dep):
            return dep
        base = layering.split_variant(dep)[0]
        if base in layering.varied:
            return layering.label(base + suffix)
        return dep

    for label in sorted(libs):
        base, suffix = layering.split_variant(label)
        if suffix:
            if layering.label(base) not in libs:
                findings.append("%s has no default-variant library %s" % (label, layering.label(base)))
            continue
        deps = libs[label].deps
        for dep in sorted(set(deps)):
            if layering.in_package(dep) and layering.split_variant(dep)[1]:
                findings.append(
                    "%s (default variant) depends on %s, of variant %s"
                    % (label, dep, layering.split_variant(dep)[1])
                )
        if base not in layering.varied:
            # A library without twins (header-only :types, say) serves every
            # variant, so it must not pick one.
            for dep in sorted(set(deps)):
                if layering.in_package(dep) and layering.split_variant(dep)[0] in layering.varied:
                    findings.append(
                        "%s has no variant twins but depends on %s, which has"
                        % (label, dep)
                    )
            continue
        for suffix in layering.suffixes:
            twin_label = layering.label(base + suffix)
            if twin_label not in libs:
                findings.append(
                    "%s has no twin %s (other variants of it exist)" % (label, twin_label)
                )
                continue
            want = set(twin(d, suffix) for d in deps)
            have = set(libs[twin_label].deps)
            for dep in sorted(have - want):
                other = layering.split_variant(dep)[1] if layering.in_package(dep) else None
                if other is not None and other != suffix and (
                    other or layering.split_variant(dep)[0] in layering.varied
                ):
                    variant = "variant %s" % other if other else "the default variant"
                    findings.append("%s depends on %s, of %s" % (twin_label, dep, variant))
                else:
                    findings.append(
                        "%s depends on %s, but %s has no such dep" % (twin_label, dep, label)
                    )
            for dep in sorted(want - have):
                findings.append(
                    "%s lacks dep %s (%s depends on %s)"
                    % (twin_label, dep, label, [d for d in deps if twin(d, suffix) == dep][0])
                )
    return findings


# ---- graph -----------------------------------------------------------------------


def floors(nodes, edges):
    """{node: longest path down to a node without deps}. edges must be acyclic."""
    result = {}

    def floor(node, path):
        if node in result:
            return result[node]
        if node in path:
            raise InputError("cycle through %s" % node)
        path.add(node)
        below = [floor(d, path) for d in edges.get(node, ())]
        path.discard(node)
        result[node] = 1 + max(below) if below else 0
        return result[node]

    for node in sorted(nodes):
        floor(node, set())
    return result


def transitive_reduction(edges):
    """edges without a -> c where c is reachable from a through another dep."""
    reach = {}

    def reachable(node):
        if node not in reach:
            out = set()
            for d in edges.get(node, ()):
                out.add(d)
                out |= reachable(d)
            reach[node] = out
        return reach[node]

    reduced = {}
    for node, deps in edges.items():
        reduced[node] = [
            d for d in deps if not any(d in reachable(other) for other in deps if other != d)
        ]
    return reduced


MERMAID_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MERMAID_KEYWORDS = {"end", "graph", "subgraph", "flowchart", "click", "style", "class"}


def mermaid_node(name):
    if MERMAID_ID_RE.match(name) and name.lower() not in MERMAID_KEYWORDS:
        return name
    return 'n_%s["%s"]' % (re.sub(r"[^A-Za-z0-9_]", "_", name), name)


def render_graph(layering):
    """The Markdown section (without its markers) for the default variant's boxes."""
    boxes = layering.boxes()
    names = {label: layering.split_variant(label)[0] for label in boxes}
    cycles = find_cycles(boxes, dep_edges(layering, boxes))
    if cycles:
        raise InputError("the boxes have a dependency cycle: " + " -> ".join(cycles[0]))
    edges = {names[b]: sorted(names[d] for d in deps) for b, deps in dep_edges(layering, boxes).items()}
    floor = floors(edges.keys(), edges)
    reduced = transitive_reduction(edges)
    order = sorted(edges, key=lambda n: (-floor[n], n))
    aggregates = sorted(
        ":" + a for a in layering.aggregates if layering.label(a) in layering.libs
    )
    lines = [
        "The boxes of `//%s` (default variant) and their direct deps, as"
        % layering.package,
        "`bazel query` sees them (`//tools/layering:core_graph`). Generated by",
        "`%s`;" % REGENERATE_COMMAND,
        "`//tools/layering:architecture_doc_test` fails when this is out of date.",
        "",
    ]
    if not boxes:
        lines.append("No box libraries yet: every default-variant `cc_library` of the package")
        lines.append(
            "is an aggregate (%s)." % (", ".join("`%s`" % a for a in aggregates) or "none")
        )
        return "\n".join(lines) + "\n"
    left_out = "The variant twins (same deps, with their suffix)"
    if aggregates:
        left_out = "The aggregates (%s) and the variant twins\n(same deps, with their suffix)" % (
            ", ".join("`%s`" % a for a in aggregates)
        )
    lines += [
        "The flowchart is the transitive reduction: an arrow `a --> b` means that",
        "`a` depends on `b` and not only through another box. The table lists every",
        "direct dep, as the BUILD file declares them. A box on floor 0 depends on no",
        "box; any other box is one floor above its highest dep.",
        left_out + " are left out.",
        "",
        "```mermaid",
        "graph TD",
    ]
    for name in order:
        lines.append("    " + mermaid_node(name))
    for name in order:
        for dep in sorted(reduced[name], key=lambda d: (-floor[d], d)):
            lines.append("    %s --> %s" % (mermaid_node(name).split("[")[0], mermaid_node(dep).split("[")[0]))
    lines += [
        "```",
        "",
        "| floor | box | direct deps |",
        "| ---: | --- | --- |",
    ]
    for label in sorted(boxes, key=lambda b: (-floor[names[b]], names[b])):
        name = names[label]
        deps = []
        for dep in sorted(set(layering.libs[label].deps)):
            if dep in names:
                deps.append("`%s`" % names[dep])
            else:
                deps.append("`%s`" % short(layering, dep))
        lines.append("| %d | `%s` | %s |" % (floor[name], name, ", ".join(deps) or "none"))
    return "\n".join(lines) + "\n"


# ---- the Markdown section ------------------------------------------------------------


def split_doc(text, path):
    """(before through the BEGIN line, section body, from the END line on)."""
    begin = text.find(BEGIN_MARKER)
    if begin < 0:
        raise InputError("%s has no line %s" % (path, BEGIN_MARKER))
    body_start = text.find("\n", begin)
    body_start = len(text) if body_start < 0 else body_start + 1
    end = text.find("<!-- END generated", body_start)
    if end < 0:
        raise InputError("%s has no line %s after its BEGIN marker" % (path, END_MARKER))
    end = text.rfind("\n", 0, end) + 1
    return text[:body_start], text[body_start:end], text[end:]


def section_text(body):
    """The section between the markers as written: a blank line each side."""
    return "\n" + body.strip("\n") + "\n\n"


def replace_section(text, path, body):
    before, _, after = split_doc(text, path)
    return before + section_text(body) + after


def workspace_path(path):
    """path, relative to the workspace when run by `bazel run`."""
    base = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if base and not os.path.isabs(path):
        return os.path.join(base, path)
    return path


# ---- the command line ----------------------------------------------------------------


def add_common(parser):
    parser.add_argument(
        "--query", required=True, metavar="FILE",
        help="output of `bazel query --output=xml` over the core's libraries ('-': stdin)",
    )
    parser.add_argument(
        "--package", default=DEFAULT_PACKAGE,
        help="package whose cc_libraries are the boxes (default: %(default)s)",
    )
    parser.add_argument(
        "--variant-suffix", action="append", dest="suffixes", metavar="SUFFIX",
        help='suffix of a variant\'s targets, "" for the default; repeat for each '
        "(default: the suffixes of HAKMEM_VARIANTS in <root>/%s)" % VARIANTS_BZL,
    )
    parser.add_argument(
        "--aggregate", action="append", dest="aggregates", metavar="NAME",
        help="a library that gathers boxes rather than being one, left out of the "
        "graph; repeat for each (default: %s)" % ", ".join(DEFAULT_AGGREGATES),
    )
    parser.add_argument(
        "--root", default=None,
        help="workspace root holding the sources (default: $BUILD_WORKSPACE_DIRECTORY, "
        "else the current directory)",
    )


def build_parser():
    parser = argparse.ArgumentParser(
        prog="layering.py",
        description="Checks and draws the layering of hakmem's core boxes from bazel query.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = sub.add_parser(
        "check", help="fail on dependency cycles, undeclared includes and mismatched variant twins"
    )
    add_common(check)
    graph = sub.add_parser("graph", help="print the boxes' graph as a Markdown section")
    add_common(graph)
    graph.add_argument(
        "--write", metavar="FILE",
        help="replace the generated section of FILE (relative to the workspace under "
        "`bazel run`) instead of printing",
    )
    docs = sub.add_parser("docs-check", help="fail when the generated section of a doc is stale")
    add_common(docs)
    docs.add_argument(
        "--doc", required=True, metavar="FILE",
        help="Markdown file with the generated section (relative to --root)",
    )
    return parser


def load(args):
    root = args.root or os.environ.get("BUILD_WORKSPACE_DIRECTORY") or "."
    suffixes = args.suffixes if args.suffixes is not None else suffixes_from_variants_bzl(root)
    if "" not in suffixes:
        raise InputError('the default variant\'s suffix "" is not among --variant-suffix')
    aggregates = args.aggregates if args.aggregates is not None else DEFAULT_AGGREGATES
    targets = read_query(args.query)
    layering = Layering(targets, args.package, suffixes, aggregates)
    if not layering.libs:
        raise InputError("the query output has no cc_library in //%s" % layering.package)
    return root, layering


def report(title, findings, out):
    if findings:
        print("%s (%d):" % (title, len(findings)), file=out)
        for finding in findings:
            print("  " + finding, file=out)


def cmd_check(args, out, err):
    root, layering = load(args)
    sections = [
        ("dependency cycles among the default variant's libraries", check_cycles(layering)),
        ("includes of headers the target does not depend on", check_includes(layering, root)),
        ("declared deps and includes that nothing uses", check_unused(layering, root)),
        ("variant twins that differ from the default variant", check_variants(layering)),
        ("functions and variables not named for their header", check_prefixes(layering, root)),
    ]
    total = sum(len(f) for _, f in sections)
    if total:
        print("layering check of //%s failed:" % layering.package, file=err)
        for title, findings in sections:
            report(title, findings, err)
        return 1
    print(
        "layering check of //%s: %d libraries (%d boxes of the default variant), "
        "no cycle, every quoted include declared and used, every dep used, "
        "variant twins alike, every box's names prefixed with its header's"
        % (layering.package, len(layering.libs), len(layering.boxes())),
        file=out,
    )
    return 0


def cmd_graph(args, out, err):
    _, layering = load(args)
    body = render_graph(layering)
    if not args.write:
        out.write(body)
        return 0
    path = workspace_path(args.write)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new = replace_section(text, path, body)
        if new != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
    except OSError as exc:
        raise InputError("cannot update %s: %s" % (path, exc.strerror)) from None
    print("%s: %s" % (path, "updated" if new != text else "already up to date"), file=out)
    return 0


def cmd_docs_check(args, out, err):
    root, layering = load(args)
    path = os.path.join(root, args.doc)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise InputError("cannot read %s: %s" % (path, exc.strerror)) from None
    _, current, _ = split_doc(text, args.doc)
    wanted = section_text(render_graph(layering))
    if current == wanted:
        print("%s: the layering graph matches bazel query" % args.doc, file=out)
        return 0
    diff = difflib.unified_diff(
        current.splitlines(True), wanted.splitlines(True),
        "%s (generated section)" % args.doc, "bazel query (layering.py graph)",
    )
    print(
        "%s: the generated layering graph is out of date. Regenerate it with\n"
        "    %s\n"
        "Difference:" % (args.doc, REGENERATE_COMMAND),
        file=err,
    )
    err.writelines(diff)
    return 1


COMMANDS = {"check": cmd_check, "graph": cmd_graph, "docs-check": cmd_docs_check}


def main(argv=None, out=None, err=None):
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, out, err)
    except InputError as exc:
        print("layering.py %s: %s" % (args.command, exc), file=err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
