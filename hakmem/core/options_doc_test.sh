#!/usr/bin/env bash
# The README's options table and the man page's option list are what
# options_doc prints from hak_options_table; the checker itself is tried on a
# hand-edited copy and on bad arguments.
# usage: options_doc_test.sh OPTIONS_DOC README MANPAGE
set -uo pipefail
[[ $# -eq 3 ]] || { echo "usage: $0 OPTIONS_DOC README MANPAGE" >&2; exit 2; }
doc=$1 readme=$2 manpage=$3
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

"$doc" --check "$readme" || fail "$readme: the options table is not what options_doc prints"
"$doc" --man --check "$manpage" || fail "$manpage: the option list is not what options_doc --man prints"

tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/options_doc_test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp "$manpage" "$tmp/hakmem.1"
chmod u+w "$tmp/hakmem.1"
# A hand edit inside the generated section: --check says so (exit 1), --write undoes it.
sed -i '/^\.B HAKMEM_STATS$/{n;s/^/Hand-edited. /}' "$tmp/hakmem.1"
cmp -s "$manpage" "$tmp/hakmem.1" && fail "the hand edit of the copy changed nothing"
"$doc" --man --check "$tmp/hakmem.1" >/dev/null 2>&1
rc=$?
[[ $rc -eq 1 ]] || fail "a hand-edited man page: --man --check exit $rc, want 1"
"$doc" --man --write "$tmp/hakmem.1" >/dev/null || fail "--man --write of the copy failed"
"$doc" --man --check "$tmp/hakmem.1" >/dev/null 2>&1
rc=$?
[[ $rc -eq 0 ]] || fail "--man --check after --man --write: exit $rc, want 0"
# The man page has no Markdown markers: exit 2, not a rewrite.
"$doc" --check "$tmp/hakmem.1" >/dev/null 2>&1
rc=$?
[[ $rc -eq 2 ]] || fail "--check of a file without the markers: exit $rc, want 2"

for args in "--bogus" "--man --man" "--check" "--man --check" "--check a --write b" "--help x"; do
  # shellcheck disable=SC2086 # each case is a list of words
  "$doc" $args >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [[ $rc -eq 2 ]] || fail "options_doc $args: exit $rc, want 2"
  grep -q '^usage: options_doc ' "$tmp/err" || fail "options_doc $args: no usage line on stderr"
  [[ -s $tmp/out ]] && fail "options_doc $args: output on stdout"
done

((fails == 0)) || { echo "$fails check(s) failed" >&2; exit 1; }
echo "options_doc_test: all checks passed"
