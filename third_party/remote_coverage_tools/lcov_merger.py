#!/usr/bin/env python3
"""hakmem's stand-in for Bazel's LcovMerger (a Java tool we cannot fetch).

Bazel 4.2.3 runs this at the end of every test under `bazel coverage`, from
@bazel_tools//tools/test:collect_coverage.sh, as $LCOV_MERGER with:

  --coverage_dir=DIR            where collect_cc_coverage.sh left gcov's output
  --output_file=FILE            the test's coverage.dat (lcov tracefile)
  --filter_sources=REGEX        (repeated) source paths to leave out
  --source_file_manifest=FILE   the instrumented files of the test
  --sources_to_replace_file=F   (optional, ignored)

With gcc 9 or later collect_cc_coverage.sh leaves one `<object>.gcov.json.gz`
per object file (gcov's JSON intermediate format) in DIR. This script turns
them into one lcov tracefile: line counts and function counts summed over the
objects (a header's inline functions appear in many), sources filtered by
--filter_sources and kept only if the manifest lists them. Tracefiles (`*.dat`)
already in DIR are merged in too. Standard library only.
"""

import argparse
import gzip
import json
import os
import re
import sys


class FileCov:
    def __init__(self):
        self.lines = {}  # line number -> count
        self.functions = {}  # name -> [start line, count]

    def add_line(self, line, count):
        self.lines[line] = self.lines.get(line, 0) + count

    def add_function(self, name, start, count):
        entry = self.functions.setdefault(name, [start, 0])
        entry[1] += count


def read_gcov_json(path, files):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data = json.load(f)
    for entry in data.get("files", []):
        cov = files.setdefault(normalise(entry["file"]), FileCov())
        for fn in entry.get("functions", []):
            name = fn.get("demangled_name") or fn["name"]
            cov.add_function(name, fn["start_line"], fn.get("execution_count", 0))
        for line in entry.get("lines", []):
            cov.add_line(line["line_number"], line.get("count", 0))


def read_tracefile(path, files):
    cov = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.strip()
            if line.startswith("SF:"):
                cov = files.setdefault(normalise(line[3:]), FileCov())
            elif cov is None:
                continue
            elif line.startswith("DA:"):
                parts = line[3:].split(",")
                cov.add_line(int(parts[0]), int(parts[1]))
            elif line.startswith("FN:"):
                start, name = line[3:].split(",", 1)
                cov.functions.setdefault(name, [int(start), 0])
            elif line.startswith("FNDA:"):
                count, name = line[5:].split(",", 1)
                cov.add_function(name, 0, int(count))
            elif line == "end_of_record":
                cov = None


def normalise(path):
    # Compilations run in the execroot with PWD=/proc/self/cwd.
    for prefix in ("/proc/self/cwd/", "./"):
        if path.startswith(prefix):
            path = path[len(prefix):]
    return path


def write_tracefile(path, files, test_name):
    with open(path, "w", encoding="utf-8") as out:
        for name in sorted(files):
            cov = files[name]
            out.write("TN:%s\n" % test_name)
            out.write("SF:%s\n" % name)
            funcs = sorted(cov.functions.items(), key=lambda kv: (kv[1][0], kv[0]))
            for fname, (start, _) in funcs:
                out.write("FN:%d,%s\n" % (start, fname))
            for fname, (_, count) in funcs:
                out.write("FNDA:%d,%s\n" % (count, fname))
            out.write("FNF:%d\n" % len(funcs))
            out.write("FNH:%d\n" % sum(1 for _, (_, c) in funcs if c > 0))
            for line in sorted(cov.lines):
                out.write("DA:%d,%d\n" % (line, cov.lines[line]))
            out.write("LF:%d\n" % len(cov.lines))
            out.write("LH:%d\n" % sum(1 for c in cov.lines.values() if c > 0))
            out.write("end_of_record\n")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coverage_dir", required=True)
    parser.add_argument("--output_file", required=True)
    parser.add_argument("--filter_sources", action="append", default=[])
    parser.add_argument("--source_file_manifest")
    parser.add_argument("--sources_to_replace_file")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print("lcov_merger: ignoring %s" % " ".join(unknown), file=sys.stderr)

    files = {}
    output = os.path.abspath(args.output_file)
    for root, _, names in os.walk(args.coverage_dir):
        for n in sorted(names):
            path = os.path.join(root, n)
            if n.endswith(".gcov.json.gz"):
                read_gcov_json(path, files)
            elif n.endswith(".dat") and os.path.abspath(path) != output:
                read_tracefile(path, files)

    filters = [re.compile(f) for f in args.filter_sources]
    files = {k: v for k, v in files.items() if not any(f.match(k) for f in filters)}
    if args.source_file_manifest:
        with open(args.source_file_manifest, encoding="utf-8") as f:
            listed = {normalise(l.strip()) for l in f if l.strip()}
        files = {k: v for k, v in files.items() if k in listed}

    test_name = os.environ.get("TEST_TARGET", "").replace("//", "").replace(":", "/")
    test_name = re.sub(r"[^A-Za-z0-9_]", "_", test_name)
    write_tracefile(args.output_file, files, test_name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
