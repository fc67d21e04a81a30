#!/usr/bin/env bash
# //tools/install:install_test: installs hakmem into a temporary prefix, builds
# and runs a program against it through pkg-config, runs Debian programs
# through the `hakmem` command, and uninstalls.
set -uo pipefail

failures=0
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  failures=$((failures + 1))
}
pass() { printf 'ok: %s\n' "$*"; }
# lacks GREP-ARGS...: grep finds nothing (a check that something is absent).
lacks() { ! grep "$@"; }
# check DESCRIPTION COMMAND...: the command must succeed.
check() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

runfiles=${RUNFILES_DIR:-${TEST_SRCDIR:-$PWD/..}}/hakmem
installer=$runfiles/tools/install/install
[[ -x $installer ]] || { echo "no installer at $installer" >&2; exit 1; }
{ read -r build_mode; read -r build_sanitizer; } <"$runfiles/tools/install/build_mode.txt"
version=$(<"$runfiles/tools/install/VERSION")

work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/install_test.XXXXXX")
prefix=$work/prefix
out=$work/out
err=$work/err

# What an install puts under the prefix, and the directories it creates.
files=(
  bin/hakmem
  include/hakmem.h
  lib/libhakmem.so
  lib/libhakmem_hardened.so
  lib/pkgconfig/hakmem.pc
  share/man/man1/hakmem.1
  share/hakmem/install-manifest.txt
)

# A file of the user's in a directory the install also uses: both must survive.
mkdir -p "$prefix/lib"
echo mine >"$prefix/lib/users-file.txt"

# ---- the installer's arguments ----------------------------------------------
"$installer" --help >"$out" 2>"$err"
check "install --help exits 0" test $? -eq 0
check "install --help prints the usage" grep -q '^Usage: .*--prefix DIR' "$out"
for bad in --bogus "--prefix" "--destdir" "--prefix=" "--uninstall --prefix"; do
  # shellcheck disable=SC2086 # a case may be several words
  "$installer" $bad >"$out" 2>"$err"
  rc=$?
  check "install $bad fails" test "$rc" -ne 0
  check "install $bad: usage or reason on stderr" grep -q '^install: ' "$err"
done
"$installer" --bogus >/dev/null 2>"$err"
check "install --bogus: usage line on stderr" grep -q '^Usage: ' "$err"
"$installer" --prefix "$work/a b" >/dev/null 2>"$err"
check "a prefix LD_PRELOAD cannot name is refused" test $? -ne 0
check "the refusal of a prefix says why" grep -q 'LD_PRELOAD cannot name' "$err"
check "nothing installed by bad arguments" test ! -e "$prefix/share" -a ! -e "$work/a b"

# ---- release check ----------------------------------------------------------
if [[ $build_mode == release && $build_sanitizer == none ]]; then
  allow=()
else
  "$installer" --prefix "$prefix" >"$out" 2>"$err"
  rc=$?
  check "a $build_mode build is refused without --allow-checked" test "$rc" -ne 0
  check "the refusal says to use --config=release" grep -q -- '--config=release' "$err"
  check "a refused install writes nothing" test ! -e "$prefix/share" -a ! -e "$prefix/bin"
  allow=(--allow-checked)
fi

# ---- install ----------------------------------------------------------------
"$installer" --prefix "$prefix" "${allow[@]}" >"$out" 2>"$err"
rc=$?
check "install into $prefix exits 0" test "$rc" -eq 0
[[ $rc -eq 0 ]] || cat "$err" >&2
if [[ ${#allow[@]} -gt 0 ]]; then
  check "installing a $build_mode build warns" grep -q 'not a release build' "$err"
fi
for f in "${files[@]}"; do
  check "installed $f" test -f "$prefix/$f"
done
for f in bin/hakmem lib/libhakmem.so lib/libhakmem_hardened.so; do
  check "$f is executable" test -x "$prefix/$f"
done
check "the header is hakmem's" cmp -s "$prefix/include/hakmem.h" "$runfiles/hakmem/core/include/hakmem.h"
check "the library is the built one" cmp -s "$prefix/lib/libhakmem.so" "$runfiles/hakmem/libhakmem.so"
manifest=$prefix/share/hakmem/install-manifest.txt
for f in "${files[@]}"; do
  [[ $f == share/hakmem/install-manifest.txt ]] && continue
  check "the manifest lists $f" grep -qE "^f [0-9a-f]{64} $f\$" "$manifest"
done
check "the manifest does not claim lib/ (the user's)" lacks -q '^d lib$' "$manifest"
check "the manifest lists include/ (created)" grep -q '^d include$' "$manifest"

# ---- pkg-config -------------------------------------------------------------
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
flags=$(pkg-config --cflags --libs hakmem)
check "pkg-config finds hakmem" test $? -eq 0
check "pkg-config --cflags has -I$prefix/include" grep -qF -- "-I$prefix/include" <<<"$flags"
check "pkg-config --libs has -L$prefix/lib -lhakmem" \
  grep -qE -- "-L$prefix/lib .*-lhakmem( |\$)" <<<"$flags"
check "pkg-config --modversion is $version" test "$(pkg-config --modversion hakmem)" = "$version"

cat >"$work/prog.c" <<'C'
#include <hakmem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Linked with -lhakmem, malloc must be hakmem's: hak_owns knows its blocks.
int main(void) {
  char *p = malloc(100);
  if (p == NULL) return 1;
  memset(p, 'x', 100);
  int stack_var = 0;
  if (!hak_owns(p)) { fprintf(stderr, "malloc's block is not hakmem's\n"); return 2; }
  if (hak_owns(&stack_var)) { fprintf(stderr, "hak_owns claims the stack\n"); return 3; }
  if (hak_usable_size(p) < 100) { fprintf(stderr, "usable size below 100\n"); return 4; }
  hak_stats s;
  hak_stats_get(&s);
  unsigned long long allocs = 0;
  for (unsigned c = 0; c < s.num_classes; c++) allocs += s.classes[c].allocs;
  if (allocs == 0) { fprintf(stderr, "hak_stats_get counted no allocation\n"); return 5; }
  // Kept as a number: the block must not be used after free, only asked about.
  uintptr_t addr = (uintptr_t)p;
  free(p);
  if (hak_owns((void *)addr)) { fprintf(stderr, "a freed block is still owned\n"); return 6; }
  puts("hakmem ok");
  return 0;
}
C
# shellcheck disable=SC2086 # pkg-config's output is a list of words
cc -std=gnu11 -Wall -Werror -o "$work/prog" "$work/prog.c" $flags 2>"$err"
rc=$?
check "a program builds with pkg-config --cflags --libs hakmem" test "$rc" -eq 0
[[ $rc -eq 0 ]] || cat "$err" >&2
# No LD_LIBRARY_PATH: the .pc file's rpath finds the library.
"$work/prog" >"$out" 2>"$err"
rc=$?
check "the program runs with hakmem's malloc (exit $rc)" test "$rc" -eq 0
[[ $rc -eq 0 ]] || cat "$err" >&2
check "the program printed its result" grep -qx 'hakmem ok' "$out"
unset PKG_CONFIG_PATH

# ---- the hakmem command -----------------------------------------------------
hakmem=$prefix/bin/hakmem
printf '%s\n' pear apple fig banana >"$work/fruit"

"$hakmem" --stats sort "$work/fruit" >"$out" 2>"$err"
check "hakmem --stats sort exits 0" test $? -eq 0
check "sort's output is sorted" test "$(tr '\n' ' ' <"$out")" = "apple banana fig pear "
check "--stats: hakmem's report on stderr" grep -q '^hakmem stats (pid [0-9]*, .* build, fast cache on)' "$err"

"$hakmem" --stats=json sort "$work/fruit" >"$out" 2>"$err"
check "--stats=json: a JSON report on stderr" grep -q '^{"pid":[0-9]*,"build":' "$err"
check "--stats=json: the report parses" \
  python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]' "$err"

"$hakmem" sort "$work/fruit" >"$out" 2>"$err"
check "without --stats no report" lacks -q 'hakmem stats' "$err"

"$hakmem" cat /proc/self/maps >"$out" 2>"$err"
check "hakmem preloads lib/libhakmem.so" grep -qF "$prefix/lib/libhakmem.so" "$out"
"$hakmem" --hardened cat /proc/self/maps >"$out" 2>"$err"
check "--hardened preloads lib/libhakmem_hardened.so" grep -qF "$prefix/lib/libhakmem_hardened.so" "$out"
check "--hardened does not load the other" lacks -qF "$prefix/lib/libhakmem.so" "$out"

LD_PRELOAD=/nonexistent/other.so "$hakmem" printenv LD_PRELOAD >"$out" 2>/dev/null
check "LD_PRELOAD is prepended to" test "$(cat "$out")" = "$prefix/lib/libhakmem.so:/nonexistent/other.so"

LD_PRELOAD="$prefix/lib/libhakmem.so /nonexistent/other.so" "$hakmem" --hardened printenv LD_PRELOAD >"$out" 2>/dev/null
check "a nested run replaces the other hakmem library" \
  test "$(cat "$out")" = "$prefix/lib/libhakmem_hardened.so:/nonexistent/other.so"

"$hakmem" --stats=json --profile "$work/p.%p.heap" printenv >"$out" 2>/dev/null
check "--stats=json sets HAKMEM_STATS=json" grep -qx 'HAKMEM_STATS=json' "$out"
check "--profile sets HAKMEM_PROF=1" grep -qx 'HAKMEM_PROF=1' "$out"
check "--profile sets HAKMEM_PROF_FILE" grep -qxF "HAKMEM_PROF_FILE=$work/p.%p.heap" "$out"

"$hakmem" --profile="$work/sort.heap" sort "$work/fruit" >/dev/null 2>"$err"
check "--profile writes a gzip profile" \
  test "$(head -c 2 "$work/sort.heap" 2>/dev/null | od -An -tx1 | tr -d ' ')" = 1f8b

"$hakmem" sh -c 'exit 7'
check "the program's exit status passes through" test $? -eq 7
"$hakmem" sh -c 'kill -TERM $$'
check "a signal's status passes through (143)" test $? -eq 143
# exec: the program's parent is this shell, not a `hakmem` process.
# shellcheck disable=SC2016 # $PPID is the inner shell's
check "hakmem execs the program" \
  test "$("$hakmem" sh -c 'cat /proc/$PPID/comm')" != hakmem
check "-- ends the options" test "$("$hakmem" -- echo --stats)" = --stats

"$hakmem" --help >"$out" 2>"$err"
check "hakmem --help exits 0" test $? -eq 0
check "hakmem --help prints the usage" grep -q '^Usage: hakmem ' "$out"
check "hakmem --version" test "$("$hakmem" --version)" = "hakmem $version"
for args in "" "--bogus ls" "--stats=xml ls" "--profile" "--stats --" "-x ls"; do
  # shellcheck disable=SC2086 # each case is a list of words
  "$hakmem" $args >"$out" 2>"$err"
  rc=$?
  check "hakmem $args: exit 2" test "$rc" -eq 2
  check "hakmem $args: usage line on stderr" grep -q '^Usage: hakmem ' "$err"
  check "hakmem $args: nothing on stdout" test ! -s "$out"
done
"$hakmem" no-such-program-xyz 2>"$err"
check "an unknown program: exit 127" test $? -eq 127

check "the man page is roff" grep -q '^\.TH HAKMEM 1' "$prefix/share/man/man1/hakmem.1"
check "the man page names the library directory" grep -qF "$prefix/lib/libhakmem.so" "$prefix/share/man/man1/hakmem.1"
for word in --hardened --stats --profile HAKMEM_STATS HAKMEM_PROF_FILE LD_PRELOAD; do
  check "the man page describes $word" grep -qF -- "${word//-/\\-}" "$prefix/share/man/man1/hakmem.1"
done
# (groff-base: tools/setup.sh installs it.) -Wbreak: the test prefix's long
# paths cannot be broken across lines.
groff_says=$(groff -man -Tutf8 -ww -Wbreak -z "$prefix/share/man/man1/hakmem.1" 2>&1)
check "groff reads the man page without warnings" test -z "$groff_says"
[[ -z $groff_says ]] || printf '%s\n' "$groff_says" >&2

# ---- reinstall, then uninstall ----------------------------------------------
"$installer" --prefix "$prefix" "${allow[@]}" >/dev/null 2>&1
check "a second install over the first exits 0" test $? -eq 0
check "the reinstall keeps include/ as created" grep -q '^d include$' "$manifest"
# The user's own files: one in a directory the install created.
echo notes >"$prefix/include/users-notes.h"

"$installer" --uninstall --prefix "$prefix" >"$out" 2>"$err"
check "uninstall exits 0" test $? -eq 0
for f in "${files[@]}"; do
  check "uninstall removed $f" test ! -e "$prefix/$f"
done
for d in bin lib/pkgconfig share; do
  check "uninstall removed the created directory $d" test ! -e "$prefix/$d"
done
check "the user's file in lib/ survives" test "$(cat "$prefix/lib/users-file.txt")" = mine
check "the user's file in include/ survives" test -f "$prefix/include/users-notes.h"
check "the prefix holds only the user's files" \
  test "$(cd "$prefix" && find . -type f | sort | tr '\n' ' ')" = "./include/users-notes.h ./lib/users-file.txt "

"$installer" --uninstall --prefix "$prefix" >"$out" 2>"$err"
check "a second uninstall fails (no manifest)" test $? -ne 0
check "a second uninstall says why" grep -q 'nothing removed' "$err"

# A changed file is not what was installed: uninstall leaves it.
"$installer" --prefix "$prefix" "${allow[@]}" >/dev/null 2>&1
echo '# edited' >>"$prefix/lib/pkgconfig/hakmem.pc"
"$installer" --uninstall --prefix "$prefix" >"$out" 2>"$err"
check "an edited file is kept" test -f "$prefix/lib/pkgconfig/hakmem.pc"
check "an edited file is reported" grep -q 'changed since it was installed' "$err"
check "the unchanged files are removed" test ! -e "$prefix/lib/libhakmem.so"
rm -f "$prefix/lib/pkgconfig/hakmem.pc"

# ---- staging: --destdir -----------------------------------------------------
stage=$work/stage
"$installer" --destdir "$stage" --prefix /opt/hakmem "${allow[@]}" >/dev/null 2>"$err"
check "install --destdir exits 0" test $? -eq 0
check "staged under DESTDIR/PREFIX" test -f "$stage/opt/hakmem/lib/libhakmem.so"
check "the staged .pc names the real prefix" grep -qx 'prefix=/opt/hakmem' "$stage/opt/hakmem/lib/pkgconfig/hakmem.pc"
check "the staged command names the real libdir" grep -qF "'/opt/hakmem/lib'" "$stage/opt/hakmem/bin/hakmem"
"$installer" --uninstall --destdir "$stage" --prefix /opt/hakmem >/dev/null 2>"$err"
check "uninstall --destdir exits 0" test $? -eq 0
check "the stage is empty of hakmem" test -z "$(find "$stage" -type f)"

if ((failures)); then
  printf '%d check(s) failed\n' "$failures" >&2
  exit 1
fi
echo "all checks passed"
