#!/usr/bin/env bash
# git with hakmem preloaded (every git process, including the ones git
# starts): a generated repository built with fixed authors and dates (init,
# 20 commits on main, a branch of 5, a merge, gc --aggressive, fsck, log,
# blame, diff); the commit hashes, fsck's verdict and the other outputs must
# match a run without hakmem. 50 and 10 commits took twice as long for the
# same lines of hakmem/core, but for thread-timing paths that either run
# hits by chance (docs/TESTING.md).
TEST_NAME=git
lib=hakmem/tests/programs/lib.sh
[[ -f ${lib} ]] || lib="$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=lib.sh
source "${lib}"

need git awk

export GIT_CONFIG_NOSYSTEM=1
export GIT_CONFIG_GLOBAL="${WORK}/home/gitconfig"
: >"${GIT_CONFIG_GLOBAL}"
export GIT_AUTHOR_NAME="Hak Mem" GIT_AUTHOR_EMAIL="hakmem@example.invalid"
export GIT_COMMITTER_NAME="Hak Mem" GIT_COMMITTER_EMAIL="hakmem@example.invalid"
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE

# write_files C: the tree of commit C (deterministic; written without hakmem).
write_files() {
  plain awk -v c="$1" 'BEGIN {
    for (f = 1; f <= 3 + c % 9; f++) {
      dir = "dir" (f % 4)
      system("mkdir -p " dir)
      out = dir "/file" f ".txt"
      for (i = 0; i < 150 + 41 * f; i++)
        printf "file %d line %d rev %d %s\n", f, i, (i % 9 == f % 9 ? c : 0), substr("abcdefghijklmnopqrstuvwxyz", 1 + (i * f) % 26) > out
      close(out)
    }
    out = "log.txt"
    printf "commit %d\n", c >> out
    close(out)
  }'
}

# make_repo RUNNER DIR: the whole history, every git command through RUNNER.
make_repo() {
  local runner=$1 dir=$2 name c
  name=$(basename "${dir}")
  mkdir -p "${dir}"
  # A subshell under set -e (never on the left of || or &&, where bash
  # would ignore set -e): the first failing command ends it, and the test.
  STEP_LOG="${dir}.out"
  (
    cd "${dir}"
    g() {
      if [[ ${runner} == plain ]]; then plain git "$@"; else hakmem "${dir}.stats" git "$@"; fi
    }
    at() {
      export GIT_AUTHOR_DATE="$((1700000000 + $1 * 3600)) +0000"
      export GIT_COMMITTER_DATE="${GIT_AUTHOR_DATE}"
    }
    g init -q -b main .
    for c in $(seq 1 20); do
      write_files "${c}"
      at "${c}"
      g add -A
      g commit -q -m "commit ${c}" -m "generated change number ${c}"
      if ((c == 12)); then g branch feature; fi
    done
    g checkout -q feature
    for c in $(seq 101 105); do
      mkdir -p feature
      plain awk -v c="${c}" 'BEGIN { for (i = 0; i < 300; i++) printf "feature %d line %d\n", c, i * c }' >"feature/f${c}.txt"
      at "${c}"
      g add -A
      g commit -q -m "feature commit ${c}"
    done
    g checkout -q main
    at 200
    g merge -q --no-ff -m "merge feature" feature
    g tag -a v1 -m "tag v1"
    g log --format=%H >"../${name}.log_before_gc"
    g gc --aggressive --prune=now --quiet
    g fsck --full --strict --no-progress >"../${name}.fsck" 2>&1
    g log --format=%H >"../${name}.log"
    g log --format='%H %T %P|%an|%ad|%s' --date=raw --graph --stat >"../${name}.log_full"
    g ls-tree -r HEAD >"../${name}.tree"
    g blame --porcelain dir1/file1.txt >"../${name}.blame"
    g diff --stat HEAD~20 HEAD >"../${name}.diff"
    g rev-list --objects --all | sort >"../${name}.objects"
    g count-objects -v | grep -E '^(count|in-pack|packs|garbage):' >"../${name}.count"
  ) >"${dir}.out" 2>&1
}

step "build the repository without hakmem"
plain_baseline "$(plain git --version)" make_repo plain "${WORK}/plain"
[[ $(wc -l <"${WORK}/plain.log") -eq 26 ]] || die "expected 26 commits (20 + 5 + merge), got $(wc -l <"${WORK}/plain.log")"
echo "  26 commits in ${SECONDS} s"

step "build the repository with hakmem"
t0=${SECONDS}
make_repo hakmem "${WORK}/hakmem"
echo "  in $((SECONDS - t0)) s"

step "compare"
check "git log --format=%H identical, before and after gc"
same_file "${WORK}/plain.log_before_gc" "${WORK}/hakmem.log_before_gc" "git log before gc"
same_file "${WORK}/plain.log" "${WORK}/hakmem.log" "git log after gc"
check "git fsck --full --strict clean in both (same output)"
[[ ! -s ${WORK}/hakmem.fsck ]] || { cat "${WORK}/hakmem.fsck" >&2; die "git fsck reported problems with hakmem preloaded"; }
same_file "${WORK}/plain.fsck" "${WORK}/hakmem.fsck" "git fsck output"
check "log --graph --stat, ls-tree, blame, diff --stat, object list, object counts identical"
for what in log_full tree blame diff objects count; do
  same_file "${WORK}/plain.${what}" "${WORK}/hakmem.${what}" "git ${what}"
done
expect_served "${WORK}/hakmem.stats" "${WORK}/hakmem.out"
echo "  | HEAD $(head -n 1 "${WORK}/hakmem.log"), $(wc -l <"${WORK}/hakmem.objects") objects"

finish
