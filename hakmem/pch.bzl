"""A precompiled GoogleTest header for hakmem's C++ tests (gcc's .gch).

Parsing gtest/gtest.h is most of a small test's compile. hakmem_gtest_pch
(//hakmem:gtest_pch) compiles hakmem_gtest_pch.h (GoogleTest and the
standard headers most tests include) once per configuration, with the C++
toolchain's own command line for it: the compilation mode's flags,
--copt/--cxxopt, the sanitizers' flags, the copts and build-mode defines of
the tests, GoogleTest's defines. A test compile with `-include
hakmem_gtest_pch.h` first (HAKMEM_GTEST_COPTS in copts.bzl) and this target
in its deps finds hakmem_gtest_pch.h.gch beside the header and loads it
instead of parsing the text.

gcc checks a .gch against the compile that finds it (the macros the header
reads, -O0 or not, -g, -fPIC, -fsanitize=...) and parses the header as text
when they differ: a .gch that does not fit costs time, not a failure. Its
check is not complete (a .gch made at -O1 and read at -O2 crashes gcc 12), so
the .gch must come from the tests' exact flags: a test with copts of its own
gets no -include (variants.bzl), and a --per_file_copt on test sources,
which this rule does not see, must not change -O. Defines: gcc uses a .gch
only in a compile that defines every macro the .gch was made with, the same
way, and may define more if the header does not name them. So //hakmem:gtest_pch
gets GoogleTest's defines and no hakmem define (the build mode's and the
variants' differ between tests, and GoogleTest reads none of them); NDEBUG in
-c opt comes with the toolchain's flags.

Made for gcc only (clang reads a .gch of its own format, and stops at a
mismatch): with another compiler the header is there without a .gch, so the
tests compile as before. //hakmem:gtest_pch_test fails if a gcc test compile
parsed the header instead of loading the .gch.
"""

load("@bazel_tools//tools/build_defs/cc:action_names.bzl", "CPP_COMPILE_ACTION_NAME")
load("@bazel_tools//tools/cpp:toolchain_utils.bzl", "find_cpp_toolchain")

# The name the tests' -include gives; the .gch is this plus ".gch".
HAKMEM_GTEST_PCH_HEADER = "hakmem_gtest_pch.h"

def _uses_pic(ctx, cc_toolchain, feature_configuration):
    """Whether a test's objects are compiled -fPIC: Bazel compiles a
    binary's sources -fPIC where the toolchain wants PIC for shared libraries
    (or --force_pic), except in -c opt (CppHelper.usePicForBinaries)."""
    return (cc_toolchain.needs_pic_for_dynamic_libraries(feature_configuration = feature_configuration) and
            ctx.var["COMPILATION_MODE"] != "opt")

def _hakmem_gtest_pch_impl(ctx):
    cc_toolchain = find_cpp_toolchain(ctx)
    header = ctx.actions.declare_file(ctx.label.name + "/" + HAKMEM_GTEST_PCH_HEADER)

    # The header the tests' -include finds: a copy beside the .gch.
    ctx.actions.expand_template(template = ctx.file.src, output = header, substitutions = {})
    headers = [header]

    if cc_toolchain.compiler in ["gcc", "compiler"]:
        feature_configuration = cc_common.configure_features(
            ctx = ctx,
            cc_toolchain = cc_toolchain,
            requested_features = ctx.features,
            unsupported_features = ctx.disabled_features,
        )
        gch = ctx.actions.declare_file(header.basename + ".gch", sibling = header)
        dep_contexts = [d[CcInfo].compilation_context for d in ctx.attr.deps]
        variables = cc_common.create_compile_variables(
            cc_toolchain = cc_toolchain,
            feature_configuration = feature_configuration,
            # Compiled from the source tree, so that __FILE__ in the header
            # tells the .gch from the copy (//hakmem:gtest_pch_test).
            source_file = ctx.file.src.path,
            output_file = gch.path,
            # As Bazel orders a C++ compile's own flags: --copt, --cxxopt,
            # the target's copts. -x: a header, for C++.
            user_compile_flags = ctx.fragments.cpp.copts + ctx.fragments.cpp.cxxopts +
                                 ctx.attr.copts + ["-x", "c++-header"],
            include_directories = depset(transitive = [c.includes for c in dep_contexts]),
            quote_include_directories = depset(transitive = [c.quote_includes for c in dep_contexts]),
            system_include_directories = depset(transitive = [c.system_includes for c in dep_contexts]),
            preprocessor_defines = depset(
                ctx.attr.local_defines,
                transitive = [c.defines for c in dep_contexts],
            ),
            use_pic = _uses_pic(ctx, cc_toolchain, feature_configuration),
        )
        ctx.actions.run(
            executable = cc_common.get_tool_for_action(
                feature_configuration = feature_configuration,
                action_name = CPP_COMPILE_ACTION_NAME,
            ),
            arguments = cc_common.get_memory_inefficient_command_line(
                feature_configuration = feature_configuration,
                action_name = CPP_COMPILE_ACTION_NAME,
                variables = variables,
            ),
            env = cc_common.get_environment_variables(
                feature_configuration = feature_configuration,
                action_name = CPP_COMPILE_ACTION_NAME,
                variables = variables,
            ),
            inputs = depset(
                [ctx.file.src],
                transitive = [cc_toolchain.all_files] + [c.headers for c in dep_contexts],
            ),
            outputs = [gch],
            mnemonic = "CppPch",
            progress_message = "Precompiling %s for %s" % (ctx.file.src.short_path, ctx.label),
        )
        headers.append(gch)

    return [
        DefaultInfo(files = depset(headers)),
        CcInfo(compilation_context = cc_common.create_compilation_context(
            headers = depset(headers),
            quote_includes = depset([header.dirname]),
        )),
    ]

hakmem_gtest_pch = rule(
    implementation = _hakmem_gtest_pch_impl,
    doc = """The header `src` (named hakmem_gtest_pch.h) and, with gcc, its
    .gch, compiled as a C++ compile with `copts` and `local_defines` and the
    defines of `deps` would be. A C++ compile that depends on it and has
    `-include hakmem_gtest_pch.h` in its copts loads the .gch when it fits.""",
    attrs = {
        "src": attr.label(allow_single_file = [".h"], mandatory = True),
        "copts": attr.string_list(doc = "the copts of the compiles that use it"),
        "local_defines": attr.string_list(doc = "defines that every compile using it has"),
        "deps": attr.label_list(
            providers = [CcInfo],
            doc = "libraries whose defines and include paths the compiles get (GoogleTest)",
        ),
        "_cc_toolchain": attr.label(default = "@bazel_tools//tools/cpp:current_cc_toolchain"),
    },
    fragments = ["cpp"],
    toolchains = ["@bazel_tools//tools/cpp:toolchain_type"],
)
