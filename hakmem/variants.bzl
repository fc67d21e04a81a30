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

load(
    "//hakmem:copts.bzl",
    "HAKMEM_COPTS",
    "HAKMEM_DEFINES",
    "HAKMEM_GTEST_COPTS",
    "HAKMEM_GTEST_PCH",
    "HAKMEM_MODE_DEFINES",
    "HAKMEM_TEST_COPTS",
)

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

# The hardened variant's defines, for a target built against it alone.
HAKMEM_HARDENED_DEFINES = [
    d
    for v in HAKMEM_VARIANTS
    if v["short_name"] == "hardened"
    for d in v["defines"]
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

def _test_copts_deps(copts, deps):
    """(copts, further deps) of a C++ test: with the precompiled GoogleTest
    header (HAKMEM_GTEST_COPTS) when it uses GoogleTest and has no copts of
    its own, which the .gch, made with HAKMEM_TEST_COPTS, would not fit."""
    gtest = [d for d in deps if type(d) == "string" and d.startswith("@system_libs//:gtest")]
    if copts or not gtest:
        return HAKMEM_TEST_COPTS + copts, []
    return HAKMEM_GTEST_COPTS, [HAKMEM_GTEST_PCH]

_BOX_VISIBILITY = ["//hakmem:__subpackages__"]

# Tag of the targets compiled once for every variant; the independence test
# finds their sources by it.
VARIANT_INDEPENDENT_TAG = "variant_independent"

def _box_name(label):
    """":os" or "//hakmem/core:os" -> "os"."""
    return label.split(":")[-1]

def _is_shared_box(label):
    """Whether a box is one library for every variant (variant_independent).

    Only boxes of //hakmem/core declared above the caller can be seen (boxes
    are declared bottom to top); elsewhere the answer is False, which is
    safe: a variant's name of a shared box is an alias of it.
    """
    if native.package_name() != _CORE_PACKAGE[2:]:
        return False
    rule = native.existing_rule(_box_name(label) + HAKMEM_VARIANTS[1]["suffix"])
    return rule != None and rule["kind"] == "alias"

def _box_dep(label, variant):
    """A variant's name for a box: the box itself if it is variant-independent
    (so the layering check sees one library, not an alias per variant)."""
    if _is_shared_box(label):
        return label
    return label + variant["suffix"]

def hakmem_box(
        name,
        hdrs,
        srcs = [],
        deps = [],
        includes = [],
        linkopts = [],
        alwayslink = False,
        variant_independent = False):
    """One box of the allocator: a cc_library per variant (name + suffix).

    deps name boxes of the same package (":os"); each variant's library
    depends on the same variant of each, so the boxes' graph is the same in
    every variant and Bazel refuses a cycle in it. Visible inside //hakmem
    only: code outside links //hakmem/core:core (or :override) and includes
    hakmem.h.

    variant_independent = True: the box's sources and headers read no
    variant define (HAKMEM_FASTCACHE, HAKMEM_HARDENED), so it is compiled
    once, with the default variant's defines, and <name>_nofastcache, ... are
    aliases of it. Its deps must be such boxes too (a load-time error
    otherwise); //hakmem/core:variant_independence_test preprocesses every
    source of it in every variant and fails if any output differs.

    <name>_hdrs: the box's headers and those of its deps, no object, for a
    test source compiled once and linked into every variant's test.
    """
    native.cc_library(
        name = name + "_hdrs",
        hdrs = hdrs,
        includes = includes,
        deps = [d + "_hdrs" for d in deps],
        visibility = _BOX_VISIBILITY,
    )
    if variant_independent:
        for d in deps:
            if not _is_shared_box(d):
                fail("box %s is variant_independent but depends on %s, which is not" % (name, d))
        native.cc_library(
            name = name,
            srcs = srcs,
            hdrs = hdrs,
            includes = includes,
            copts = HAKMEM_COPTS,
            local_defines = _variant_defines(HAKMEM_VARIANTS[0]),
            linkopts = (["-lpthread"] if srcs else []) + linkopts,
            deps = deps,
            linkstatic = True,
            alwayslink = alwayslink,
            tags = [VARIANT_INDEPENDENT_TAG],
            visibility = _BOX_VISIBILITY,
        )
        for variant in HAKMEM_VARIANTS[1:]:
            native.alias(
                name = name + variant["suffix"],
                actual = ":" + name,
                visibility = _BOX_VISIBILITY,
            )
        return
    for variant in HAKMEM_VARIANTS:
        native.cc_library(
            name = name + variant["suffix"],
            srcs = srcs,
            hdrs = hdrs,
            includes = includes,
            copts = HAKMEM_COPTS,
            local_defines = _variant_defines(variant),
            linkopts = (["-lpthread"] if srcs else []) + linkopts,
            deps = [_box_dep(d, variant) for d in deps],
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
            deps = [_box_dep(":" + b, variant) for b in boxes + [public_hdrs_box]],
            linkstatic = True,
            visibility = visibility,
        )
        native.cc_library(
            name = "override" + suffix,
            srcs = override_srcs,
            copts = HAKMEM_COPTS,
            local_defines = _variant_defines(variant),
            deps = [_box_dep(":" + b, variant) for b in ["api", "introspect", "core", "profile"]],
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
        compile_once = False,
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
    Add @system_libs//:gtest_main to deps for GoogleTest: the sources then
    read the precompiled GoogleTest header first (HAKMEM_GTEST_COPTS), unless
    copts are given. It is compiled with
    the variant's defines (HAKMEM_FASTCACHE=...) and the build-mode defines,
    so it sees the internal headers as the boxes do.

    In deps, data, args and env values, "{suffix}" becomes the variant's
    target suffix ("" or "_nofastcache") and "{variant}" its short name.
    linkstatic defaults to True: the test binary contains the allocator
    (relevant when override = True). With override = True the tests are
    skipped under --config=asan and --config=tsan.

    compile_once = True: the sources read no variant define, so they are
    compiled once (a testonly library <name>_lib, against the boxes'
    headers) and linked into every variant's test with that variant's boxes;
    deps must be free of "{suffix}". When every box is variant_independent
    (hakmem_box) and link_core is False, every variant's binary
    would be the same one, so there is a single cc_test <name>, run once.
    //hakmem/core:variant_independence_test and its siblings check the claim.
    """
    if compile_once:
        _compile_once_test(name, srcs, deps, boxes, link_core, override, data, args, env,
                           size, tags, copts, linkstatic, kwargs)
        return
    lib = "override" if override else "core"
    test_copts, pch = _test_copts_deps(copts, deps)
    _variant_cc_tests(name, {
        v["short_name"]: {
            "srcs": srcs,
            "deps": [_box_dep(_CORE_PACKAGE + ":" + b, v) for b in boxes] +
                    ([_CORE_PACKAGE + ":" + lib + v["suffix"]] if link_core else []) +
                    _expand(deps, v) + pch,
            "copts": test_copts,
            "local_defines": _variant_defines(v),
        }
        for v in HAKMEM_VARIANTS
    }, override, data, args, env, size, tags, linkstatic, kwargs)

def _variant_cc_tests(name, own, override, data, args, env, size, tags, linkstatic, kwargs):
    """cc_test <name>_<variant> for every variant, own[short name] giving
    its srcs, deps, copts and local_defines, and the test_suite <name>."""
    tests = []
    for variant in HAKMEM_VARIANTS:
        test_name = name + "_" + variant["short_name"]
        attrs = dict(kwargs)
        attrs.update(own[variant["short_name"]])
        native.cc_test(
            name = test_name,
            data = _expand(data, variant),
            args = _expand(args, variant),
            env = _expand(env, variant),
            size = size,
            tags = tags + ["variant_" + variant["short_name"]],
            linkstatic = linkstatic,
            target_compatible_with = _REPLACES_MALLOC_COMPATIBILITY if override else [],
            **attrs
        )
        tests.append(":" + test_name)
    native.test_suite(
        name = name,
        tests = tests,
        tags = tags,
    )

def _compile_once_test(name, srcs, deps, boxes, link_core, override, data, args, env,
                       size, tags, copts, linkstatic, kwargs):
    """hakmem_variant_test with compile_once = True."""
    default = HAKMEM_VARIANTS[0]
    for d in deps:
        if type(d) == "string" and "{suffix}" in d:
            fail("%s: compile_once needs deps without {suffix} (%s)" % (name, d))
    box_deps = [_CORE_PACKAGE + ":" + b for b in boxes]
    test_copts, pch = _test_copts_deps(copts, deps)
    if not link_core and all([_is_shared_box(d) for d in box_deps]):
        native.cc_test(
            name = name,
            srcs = srcs,
            deps = box_deps + deps + pch,
            copts = test_copts,
            local_defines = _variant_defines(default),
            data = _expand(data, default),
            args = _expand(args, default),
            env = _expand(env, default),
            size = size,
            tags = tags + [VARIANT_INDEPENDENT_TAG],
            linkstatic = linkstatic,
            **kwargs
        )
        return
    # Headers only: each variant's test links its own boxes.
    native.cc_library(
        name = name + "_lib",
        testonly = True,
        srcs = srcs,
        deps = [d + "_hdrs" for d in box_deps] + [_CORE_PACKAGE + ":hakmem_h_hdrs"] + deps + pch,
        copts = test_copts,
        local_defines = _variant_defines(default),
        linkstatic = True,
        # The tests register themselves from static constructors.
        alwayslink = True,
        tags = [VARIANT_INDEPENDENT_TAG],
    )
    lib = "override" if override else "core"
    _variant_cc_tests(name, {
        v["short_name"]: {
            "deps": [":" + name + "_lib"] + [_box_dep(d, v) for d in box_deps] +
                    ([_CORE_PACKAGE + ":" + lib + v["suffix"]] if link_core else []),
        }
        for v in HAKMEM_VARIANTS
    }, override, data, args, env, size, tags, linkstatic, kwargs)

def hakmem_variant_independence_test(name, data = []):
    """Checks that what this package compiles once reads no variant define.

    Call it last in a BUILD file. It finds the package's targets tagged
    VARIANT_INDEPENDENT_TAG (the variant_independent boxes, the
    compile_once tests) and makes an sh_test that preprocesses each of their
    C and C++ sources with every variant's defines, in every build mode, and
    fails if the outputs differ. data: the headers those sources include from
    other packages.
    """
    files = []
    headers = []
    for rule in native.existing_rules().values():
        if VARIANT_INDEPENDENT_TAG not in rule.get("tags", []):
            continue
        for f in list(rule.get("srcs", [])) + list(rule.get("hdrs", [])):
            if f.endswith(".c") or f.endswith(".cc"):
                if f not in files:
                    files.append(f)
            elif f not in headers:
                headers.append(f)
    files = sorted(files)
    variant_args = []
    for v in HAKMEM_VARIANTS:
        variant_args += ["--variant", v["short_name"] + ":" + ",".join(v["defines"])]
    mode_args = []
    seen = []
    for mode, defines in sorted(HAKMEM_MODE_DEFINES.items()):
        # default and debug have the same defines: check them once.
        if defines not in seen:
            seen.append(defines)
            mode_args += ["--mode", mode + ":" + ",".join(defines)]
    native.sh_test(
        name = name,
        # About 0.25 s of CPU per C++ source, variant and build mode.
        size = "medium",
        srcs = ["//hakmem:variant_independence_test.sh"],
        args = variant_args + mode_args + ["$(rootpath %s)" % f for f in files],
        data = files + sorted(headers) + data,
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
