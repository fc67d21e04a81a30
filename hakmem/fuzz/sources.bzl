"""cc_library_sources: the source files of cc_library targets, as runfiles.

The fuzz smoke test compiles hakmem's core itself, with clang and libFuzzer,
so it needs the sources of //hakmem/core:core rather than the library Bazel
built with gcc. An aspect reads them from the library's srcs and hdrs, so
the list follows the core package without naming its files here.
"""

_SourcesInfo = provider(
    doc = "Source files (srcs and hdrs) of a cc_library.",
    fields = {"files": "depset of File"},
)

def _collect_sources_impl(target, ctx):
    files = []
    for attr in ("srcs", "hdrs"):
        files.extend(getattr(ctx.rule.files, attr, []))
    return [_SourcesInfo(files = depset(files))]

_collect_sources = aspect(implementation = _collect_sources_impl)

def _cc_library_sources_impl(ctx):
    files = depset(transitive = [lib[_SourcesInfo].files for lib in ctx.attr.libs])
    return [DefaultInfo(
        files = files,
        runfiles = ctx.runfiles(transitive_files = files),
    )]

cc_library_sources = rule(
    implementation = _cc_library_sources_impl,
    doc = "Makes the srcs and hdrs of `libs` (cc_library targets) its files and runfiles.",
    attrs = {
        "libs": attr.label_list(aspects = [_collect_sources], mandatory = True),
    },
)
