"""Compiler options and build-mode defines shared by every hakmem target.

Warnings are errors for hakmem's own code only; external code (GoogleTest,
abseil, ...) is compiled without -Werror through .bazelrc.

Usage:
    load("//hakmem:copts.bzl", "HAKMEM_COPTS", "HAKMEM_DEFINES")
    cc_library(..., copts = HAKMEM_COPTS, local_defines = HAKMEM_DEFINES)

The values are select()s or lists; both can be extended with `+ [...]`.
"""

# -O1 in the default -c fastbuild mode so that tests of an allocator are not
# crawling at -O0; -c opt (--config=release) and -c dbg (--config=debug) keep
# the toolchain's -O2 and -O0.
# Release builds drop the frame pointer Bazel's toolchain keeps: it costs the
# allocator's fast paths a push, a move and a pop each.
_OPT_COPTS = select({
    "//hakmem:fastbuild": ["-O1"],
    "//hakmem:release": ["-fomit-frame-pointer"],
    "//conditions:default": [],
})

_WARNINGS = [
    "-Wall",
    "-Wextra",
    "-Werror",
]

# For hakmem's C sources (C only: -std=gnu11 breaks a C++ compile).
HAKMEM_COPTS = [
    "-std=gnu11",
    "-fvisibility=hidden",
] + _WARNINGS + _OPT_COPTS

# For hakmem's tests and benchmarks, C or C++. No -std here: .bazelrc gives
# C -std=gnu11 and C++ -std=c++17, and gcc rejects a C++ -std on a C file
# under -Werror (and the other way round).
HAKMEM_TEST_COPTS = _WARNINGS + _OPT_COPTS

# For hakmem's GoogleTest sources, C++ only (a C compile cannot read the
# header): HAKMEM_TEST_COPTS with the precompiled GoogleTest header read
# first. Put HAKMEM_GTEST_PCH in the target's deps (it brings the header and
# its .gch, made with HAKMEM_TEST_COPTS: see //hakmem:pch.bzl) and no copts of
# its own beside these, which the .gch would not fit.
HAKMEM_GTEST_COPTS = HAKMEM_TEST_COPTS + [
    "-include",
    "hakmem_gtest_pch.h",
]

HAKMEM_GTEST_PCH = "//hakmem:gtest_pch"

# Build-mode preprocessor defines, chosen by --config=release / --config=debug
# (plain lists too, for the variant independence test, which checks every mode).
_CHECKED_DEFINES = [
    "HAKMEM_BUILD_RELEASE=0",
    "HAKMEM_CHECK_DEFAULT=2",  # full
    "HAKMEM_DEBUG=1",
]

HAKMEM_MODE_DEFINES = {
    "release": [
        "HAKMEM_BUILD_RELEASE=1",
        "HAKMEM_CHECK_DEFAULT=1",  # cheap
        "NDEBUG",
    ],
    "debug": _CHECKED_DEFINES,
    "default": _CHECKED_DEFINES,
}

HAKMEM_DEFINES = select({
    "//hakmem:release": HAKMEM_MODE_DEFINES["release"],
    "//hakmem:debug": HAKMEM_MODE_DEFINES["debug"],
    "//conditions:default": HAKMEM_MODE_DEFINES["default"],
})
