"""Build variants of the hakmem allocator, and macros that expand over them.

Each variant compiles the same sources with different preprocessor defines.
The defines are applied to the variant's own compilation (local_defines), so
code that only includes the public headers does not need them.

Targets made in //hakmem/core, for each variant (suffix "", "_nofastcache",
"_hardened"):
    <box><suffix>        one cc_library per box (hakmem_box)
    core<suffix>         every box, and include/hakmem.h
    override<suffix>     core plus malloc/free/... (override.c)
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

# For a test written by hand that replaces malloc (target_compatible_with).
HAKMEM_REPLACES_MALLOC = _REPLACES_MALLOC_COMPATIBILITY

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

_BOX_VISIBILITY = ["//hakmem:__subpackages__"]

def hakmem_box(name, hdrs, srcs = [], deps = [], includes = [], linkopts = [], alwayslink = False):
    """One box of the allocator: a cc_library per variant (name + suffix).

    deps name boxes of the same package (":os"); each variant's library
    depends on the same variant of each, so the boxes' graph is the same in
    every variant and Bazel refuses a cycle in it. Visible inside //hakmem
    only: code outside links //hakmem/core:core (or :override) and includes
    hakmem.h.
    """
    for variant in HAKMEM_VARIANTS:
        native.cc_library(
            name = name + variant["suffix"],
            srcs = srcs,
            hdrs = hdrs,
            includes = includes,
            copts = HAKMEM_COPTS,
            local_defines = _variant_defines(variant),
            linkopts = (["-lpthread"] if srcs else []) + linkopts,
            deps = [d + variant["suffix"] for d in deps],
            # Static only: internal symbols are hidden (-fvisibility=hidden).
            linkstatic = True,
            alwayslink = alwayslink,
            visibility = _BOX_VISIBILITY,
        )

def hakmem_core_libraries(boxes, public_hdrs_box, override_srcs, visibility = ["//visibility:public"]):
    """Creates core<suffix> and override<suffix> for every variant.

    Args:
      boxes: every box (made with hakmem_box) that the allocator links.
      public_hdrs_box: the box holding include/hakmem.h.
      override_srcs: sources that define malloc/free/...; linked with
        alwayslink so that a binary or .so gets them even if nothing calls them.
      visibility: of core and override.
    """
    for variant in HAKMEM_VARIANTS:
        suffix = variant["suffix"]
        native.cc_library(
            name = "core" + suffix,
            deps = [":" + b + suffix for b in boxes + [public_hdrs_box]],
            linkstatic = True,
            visibility = visibility,
        )
        native.cc_library(
            name = "override" + suffix,
            srcs = override_srcs,
            copts = HAKMEM_COPTS,
            local_defines = _variant_defines(variant),
            deps = [":api" + suffix, ":introspect" + suffix, ":core" + suffix, ":profile" + suffix],
            alwayslink = True,
            linkstatic = True,
            visibility = visibility,
        )

def hakmem_variant_test(
        name,
        srcs,
        deps = [],
        boxes = [],
        link_core = True,
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
    test_suite `<name>` holding them. Each test is also tagged
    "variant_<short name>", so a run can pick variants with
    --test_tag_filters (CI's sanitizer passes take the default one).

    The test links the boxes named in `boxes` (e.g. ["slab"]: that box and
    the boxes below it, whose headers it may include as "hakmem/core/slab.h")
    and, when link_core is True, //hakmem/core:core<suffix>, or
    :override<suffix> (malloc replaced) when override = True; plus `deps`.
    Add @system_libs//:gtest_main to deps for GoogleTest. It is compiled with
    the variant's defines (HAKMEM_FASTCACHE=...) and the build-mode defines,
    so it sees the internal headers as the boxes do.

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
            srcs = srcs,
            deps = [_CORE_PACKAGE + ":" + b + variant["suffix"] for b in boxes] +
                   ([_CORE_PACKAGE + ":" + lib + variant["suffix"]] if link_core else []) +
                   _expand(deps, variant),
            copts = HAKMEM_TEST_COPTS + copts,
            local_defines = _variant_defines(variant),
            data = _expand(data, variant),
            args = _expand(args, variant),
            env = _expand(env, variant),
            size = size,
            tags = tags + ["variant_" + variant["short_name"]],
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
    Skipped under --config=asan and --config=tsan. Tagged "preload", so a run
    can leave them out (tools/coverage.sh does: a preloaded program's own
    coverage data is not the tests').
    """
    tests = []
    tags = tags + ["preload"]
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
            tags = tags + ["variant_" + variant["short_name"]],
            target_compatible_with = _REPLACES_MALLOC_COMPATIBILITY,
            **kwargs
        )
        tests.append(":" + test_name)
    native.test_suite(
        name = name,
        tests = tests,
        tags = tags,
    )
