"""Build variants of the hakmem allocator, and macros that expand over them.

Each variant compiles the same sources with different preprocessor defines.
The defines are applied to the variant's own compilation (local_defines), so
code that only includes the public headers does not need them.

Targets made by hakmem_core_libraries() in //hakmem/core:
    core, override                            (variant "fastcache", default)
    core_nofastcache, override_nofastcache    (variant "nofastcache")
    core_hardened, override_hardened          (variant "hardened")
    internal_headers                          (filegroup of the private .h)
"""

load("//hakmem:copts.bzl", "HAKMEM_COPTS", "HAKMEM_DEFINES", "HAKMEM_TEST_COPTS")

HAKMEM_VARIANTS = [
    {
        # Appended to target names; "" is the default variant.
        "suffix": "",
        # Appended to test names.
        "short_name": "fastcache",
        "defines": ["HAKMEM_FASTCACHE=1"],
    },
    {
        "suffix": "_nofastcache",
        "short_name": "nofastcache",
        "defines": ["HAKMEM_FASTCACHE=0"],
    },
    {
        # Encoded free-list links, guard pages, randomised carving.
        "suffix": "_hardened",
        "short_name": "hardened",
        "defines": [
            "HAKMEM_FASTCACHE=1",
            "HAKMEM_HARDENED=1",
        ],
    },
]

_CORE_PACKAGE = "//hakmem/core"

# Tests that replace malloc (override = True, LD_PRELOAD) cannot run under
# ASan or TSan, whose runtimes replace malloc too: skip them there.
_REPLACES_MALLOC_COMPATIBILITY = select({
    "//hakmem:asan": ["//hakmem:incompatible"],
    "//hakmem:tsan": ["//hakmem:incompatible"],
    "//conditions:default": [],
})

def _expand_string(value, variant):
    return value.replace("{suffix}", variant["suffix"]).replace(
        "{variant}",
        variant["short_name"],
    )

def _expand(value, variant):
    """Replaces {suffix} and {variant} in a string, or in each list item / dict value.

    Anything else (a select(), say) is returned unchanged.
    """
    if type(value) == "string":
        return _expand_string(value, variant)
    if type(value) == "list":
        return [_expand_string(v, variant) if type(v) == "string" else v for v in value]
    if type(value) == "dict":
        return {
            k: _expand_string(v, variant) if type(v) == "string" else v
            for k, v in value.items()
        }
    return value

def _variant_defines(variant):
    return variant["defines"] + HAKMEM_DEFINES

def hakmem_core_libraries(srcs, hdrs, override_srcs, deps = [], visibility = ["//visibility:public"]):
    """Creates core<suffix> and override<suffix> for every variant.

    Args:
      srcs: the allocator's sources and private headers.
      hdrs: public headers, under include/ (which goes on the include path).
      override_srcs: sources that define malloc/free/...; linked with
        alwayslink so that a binary or .so gets them even if nothing calls them.
      deps: extra dependencies of core.
      visibility: of all targets created.
    """
    private_hdrs = [s for s in srcs if s.endswith(".h")]

    # The private headers, for tests that reach into the allocator's internals
    # (hakmem_variant_test adds this to every test's srcs).
    native.filegroup(
        name = "internal_headers",
        srcs = private_hdrs,
        visibility = visibility,
    )
    for variant in HAKMEM_VARIANTS:
        suffix = variant["suffix"]
        native.cc_library(
            name = "core" + suffix,
            srcs = srcs,
            hdrs = hdrs,
            includes = ["include"],
            copts = HAKMEM_COPTS,
            local_defines = _variant_defines(variant),
            linkopts = ["-lpthread"],
            deps = deps,
            # Static only: internal symbols are hidden (-fvisibility=hidden),
            # so a shared libcore.so/liboverride.so could not link.
            linkstatic = True,
            visibility = visibility,
        )
        native.cc_library(
            name = "override" + suffix,
            srcs = override_srcs + private_hdrs,
            copts = HAKMEM_COPTS,
            local_defines = _variant_defines(variant),
            deps = [":core" + suffix],
            alwayslink = True,
            linkstatic = True,
            visibility = visibility,
        )

def hakmem_variant_test(
        name,
        srcs,
        deps = [],
        override = False,
        data = [],
        args = [],
        env = {},
        size = "medium",
        tags = [],
        copts = [],
        linkstatic = True,
        **kwargs):
    """A C++ test run against every variant of the allocator.

    Creates cc_test `<name>_fastcache`, `<name>_nofastcache`, ... and a
    test_suite `<name>` holding them.

    The test links //hakmem/core:core<suffix>, or :override<suffix> (malloc
    replaced) when override = True, plus `deps`. Add @system_libs//:gtest_main
    to deps for GoogleTest. It is compiled with the variant's defines
    (HAKMEM_FASTCACHE=...) and the build-mode defines, so it may include
    the allocator's private headers (as "hakmem/core/foo.h"), seeing them as
    the library does.

    In deps, data, args and env values, "{suffix}" becomes the variant's
    target suffix ("" or "_nofastcache") and "{variant}" its short name.
    linkstatic defaults to True: the test binary contains the allocator
    (relevant when override = True). With override = True the tests are
    skipped under --config=asan and --config=tsan.
    """
    tests = []
    for variant in HAKMEM_VARIANTS:
        test_name = name + "_" + variant["short_name"]
        lib = "override" if override else "core"
        native.cc_test(
            name = test_name,
            srcs = srcs + [_CORE_PACKAGE + ":internal_headers"],
            deps = [_CORE_PACKAGE + ":" + lib + variant["suffix"]] + _expand(deps, variant),
            copts = HAKMEM_TEST_COPTS + copts,
            local_defines = _variant_defines(variant),
            data = _expand(data, variant),
            args = _expand(args, variant),
            env = _expand(env, variant),
            size = size,
            tags = tags,
            linkstatic = linkstatic,
            target_compatible_with = _REPLACES_MALLOC_COMPATIBILITY if override else [],
            **kwargs
        )
        tests.append(":" + test_name)
    native.test_suite(
        name = name,
        tests = tests,
        tags = tags,
    )

def hakmem_variant_sh_test(
        name,
        srcs,
        deps = [],
        data = [],
        args = [],
        env = {},
        size = "medium",
        tags = [],
        **kwargs):
    """A shell test run with the preload library of every variant.

    Creates sh_test `<name>_fastcache`, `<name>_nofastcache`, ... and a
    test_suite `<name>`. Each gets //hakmem:libhakmem<suffix>.so in its
    runfiles and these environment variables:

      HAKMEM_SO       runfiles-relative path of that .so, e.g.
                      "hakmem/libhakmem_nofastcache.so". Tests start in the
                      runfiles root, so use it as LD_PRELOAD="$PWD/$HAKMEM_SO".
      HAKMEM_VARIANT  the variant's short name ("fastcache", ...).

    In deps, data, args and env values, "{suffix}" becomes the variant's
    target suffix and "{variant}" its short name, e.g.
    data = ["//hakmem/bench:larson"] or args = ["$(rootpath //hakmem:libhakmem{suffix}.so)"].
    Skipped under --config=asan and --config=tsan.
    """
    tests = []
    for variant in HAKMEM_VARIANTS:
        test_name = name + "_" + variant["short_name"]
        so = "//hakmem:libhakmem" + variant["suffix"] + ".so"
        test_env = {
            "HAKMEM_SO": "$(rootpath %s)" % so,
            "HAKMEM_VARIANT": variant["short_name"],
        }
        test_env.update(_expand(env, variant))
        native.sh_test(
            name = test_name,
            srcs = srcs,
            deps = _expand(deps, variant),
            data = [so] + _expand(data, variant),
            args = _expand(args, variant),
            env = test_env,
            size = size,
            tags = tags,
            target_compatible_with = _REPLACES_MALLOC_COMPATIBILITY,
            **kwargs
        )
        tests.append(":" + test_name)
    native.test_suite(
        name = name,
        tests = tests,
        tags = tags,
    )
