"""Repository rule `system_libs`: Debian's C/C++ libraries as Bazel targets.

Runs pkg-config when the repository is fetched and writes @system_libs with
link-only cc_library targets (the headers live in /usr/include, which the
compiler searches by default):

  @system_libs//:gtest           GoogleTest + GoogleMock, you write main()
  @system_libs//:gtest_main      the same plus GoogleTest's main()
  @system_libs//:benchmark       Google Benchmark, you write main()
  @system_libs//:benchmark_main  the same plus Benchmark's main()
  @system_libs//:absl            the abseil libraries listed in _ABSL_MODULES

Packages: libgtest-dev libgmock-dev libbenchmark-dev libabsl-dev pkg-config,
all installed by tools/setup.sh.
"""

_SETUP_HINT = "Run tools/setup.sh (as root) to install the build dependencies."

# pkg-config module -> Debian package that ships it (for error messages).
_PACKAGE_OF = {
    "gtest": "libgtest-dev",
    "gtest_main": "libgtest-dev",
    "gmock": "libgmock-dev",
    "benchmark": "libbenchmark-dev",
}

# abseil modules that @system_libs//:absl links. All exist in Debian 12's
# libabsl-dev 20220623.
_ABSL_MODULES = [
    "absl_base",
    "absl_debugging",
    "absl_failure_signal_handler",
    "absl_flags",
    "absl_flags_parse",
    "absl_flat_hash_map",
    "absl_flat_hash_set",
    "absl_hash",
    "absl_inlined_vector",
    "absl_node_hash_map",
    "absl_node_hash_set",
    "absl_optional",
    "absl_random_random",
    "absl_span",
    "absl_stacktrace",
    "absl_status",
    "absl_statusor",
    "absl_str_format",
    "absl_strings",
    "absl_symbolize",
    "absl_synchronization",
    "absl_time",
    "absl_variant",
]

# Linked when present: newer abseil releases (20230125 and later) add logging.
_ABSL_OPTIONAL_MODULES = [
    "absl_check",
    "absl_log",
    "absl_log_initialize",
]

def _fail(msg):
    fail("\n@system_libs: %s\n%s\n" % (msg, _SETUP_HINT))

def _pkg_config(rctx, pkg_config, args):
    result = rctx.execute([pkg_config] + args)
    if result.return_code != 0:
        _fail("`pkg-config %s` failed:\n%s" % (" ".join(args), result.stderr))
    return result.stdout.strip()

def _words(text):
    """Splits pkg-config output at whitespace (Starlark's split needs a separator)."""
    text = text.replace("\t", " ").replace("\n", " ")
    return [w for w in text.split(" ") if w]

def _exists(rctx, pkg_config, module):
    return rctx.execute([pkg_config, "--exists", module]).return_code == 0

def _flags(rctx, pkg_config, modules):
    """Returns (linkopts, defines, include_dirs) for the given modules."""
    linkopts = _words(_pkg_config(rctx, pkg_config, ["--libs"] + modules))
    defines = []
    include_dirs = []
    for flag in _words(_pkg_config(rctx, pkg_config, ["--cflags"] + modules)):
        if flag.startswith("-D"):
            if flag[2:] not in defines:
                defines.append(flag[2:])
        elif flag.startswith("-I"):
            if flag[2:] not in include_dirs and flag[2:] != "/usr/include":
                include_dirs.append(flag[2:])
        elif flag == "-pthread":
            if "-pthread" not in linkopts:
                linkopts.append("-pthread")
        else:
            _fail("unexpected compiler flag %r from pkg-config for %s" %
                  (flag, " ".join(modules)))
    return linkopts, defines, include_dirs

def _with_pthread(linkopts):
    if "-lpthread" in linkopts or "-pthread" in linkopts:
        return linkopts
    return linkopts + ["-lpthread"]

def _library(rctx, name, linkopts, defines, include_dirs, doc):
    # Headers outside /usr/include are linked into the repository so that
    # cc_library.includes (which only takes in-repository paths) can name them.
    includes = []
    for index, path in enumerate(include_dirs):
        link = "include/%s_%d" % (name, index)
        rctx.symlink(path, link)
        includes.append(link)
    return """
# {doc}
cc_library(
    name = "{name}",
    defines = {defines},
    includes = {includes},
    linkopts = {linkopts},
)
""".format(
        doc = doc,
        name = name,
        defines = repr(defines),
        includes = repr(includes),
        linkopts = repr(linkopts),
    )

def _system_libs_impl(rctx):
    pkg_config = rctx.which("pkg-config")
    if pkg_config == None:
        _fail("pkg-config is not installed (Debian package: pkg-config).")

    for module in ["gtest", "gtest_main", "gmock", "benchmark"]:
        if not _exists(rctx, pkg_config, module):
            _fail("pkg-config module %r not found (Debian package: %s)." %
                  (module, _PACKAGE_OF[module]))
    missing = [m for m in _ABSL_MODULES if not _exists(rctx, pkg_config, m)]
    if missing:
        _fail("abseil pkg-config modules not found: %s (Debian package: libabsl-dev)." %
              ", ".join(missing))
    absl_modules = _ABSL_MODULES + [
        m
        for m in _ABSL_OPTIONAL_MODULES
        if _exists(rctx, pkg_config, m)
    ]

    # Benchmark ships no pkg-config module for its main(); the archive comes
    # with libbenchmark-dev.
    libdir = _pkg_config(rctx, pkg_config, ["--variable=libdir", "benchmark"])
    if not rctx.path(libdir + "/libbenchmark_main.a").exists:
        _fail("%s/libbenchmark_main.a not found (Debian package: libbenchmark-dev)." % libdir)

    build = [
        "# Generated by //third_party:system_libs.bzl from pkg-config output.",
        "# Do not edit: re-created on every fetch (each new Bazel server).",
        "",
        'package(default_visibility = ["//visibility:public"])',
    ]

    gtest = _flags(rctx, pkg_config, ["gmock", "gtest"])
    build.append(_library(
        rctx,
        "gtest",
        _with_pthread(gtest[0]),
        gtest[1],
        gtest[2],
        "GoogleTest and GoogleMock; the test provides main().",
    ))

    gtest_main = _flags(rctx, pkg_config, ["gmock", "gtest_main", "gtest"])
    build.append(_library(
        rctx,
        "gtest_main",
        _with_pthread(gtest_main[0]),
        gtest_main[1],
        gtest_main[2],
        "GoogleTest and GoogleMock with GoogleTest's main().",
    ))

    bench = _flags(rctx, pkg_config, ["benchmark"])
    build.append(_library(
        rctx,
        "benchmark",
        _with_pthread(bench[0]),
        bench[1],
        bench[2],
        "Google Benchmark; the binary provides main().",
    ))
    build.append(_library(
        rctx,
        "benchmark_main",
        _with_pthread(["-lbenchmark_main"] + bench[0]),
        bench[1],
        bench[2],
        "Google Benchmark with its main().",
    ))

    absl = _flags(rctx, pkg_config, absl_modules)
    build.append(_library(
        rctx,
        "absl",
        _with_pthread(absl[0]),
        absl[1],
        absl[2],
        "abseil (%s)." % ", ".join(absl_modules),
    ))

    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.file("BUILD.bazel", "\n".join(build))

system_libs = repository_rule(
    implementation = _system_libs_impl,
    # Re-run when pkg-config's search path changes, and on every fetch, so that
    # packages installed after the first build are picked up.
    environ = ["PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "PATH"],
    local = True,
    doc = "Creates @system_libs from the system's pkg-config modules.",
)
