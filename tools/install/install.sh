#!/usr/bin/env bash
# `bazel run --config=release //:install -- [options]`: installs hakmem under a
# prefix (libraries, header, pkg-config file, the `hakmem` command, its man
# page) and records every file in a manifest; --uninstall removes what the
# manifest names and nothing else.
set -euo pipefail

usage_line='Usage: bazel run --config=release //:install -- [--prefix DIR] [--destdir DIR] [--uninstall] [--allow-checked]'

usage() {
  cat <<USAGE
$usage_line

Installs, under PREFIX (default /usr/local):
  lib/libhakmem.so, lib/libhakmem_hardened.so   the preload libraries
  include/hakmem.h                              the public header
  lib/pkgconfig/hakmem.pc                       for pkg-config --cflags --libs hakmem
  bin/hakmem                                    runs a program with hakmem preloaded
  share/man/man1/hakmem.1                       its manual
  $MANIFEST_REL   what was installed
and, with --uninstall, removes exactly the files that manifest names, then
the directories the install created if they are empty.

Options:
  --prefix DIR     where to install (default /usr/local); relative to the
                   directory bazel was started in
  --destdir DIR    stage the files under DIR/PREFIX (packaging); paths
                   written into the files still name PREFIX (also: DESTDIR=)
  --uninstall      remove what an earlier install put under DESTDIR/PREFIX
  --allow-checked  install libraries of a build without --config=release
                   (slower, with assertions: for testing only)
  --help           show this help
USAGE
}

MANIFEST_REL=share/hakmem/install-manifest.txt

die() {
  printf 'install: %s\n' "$1" >&2
  exit 1
}

# Bad usage: the reason and the usage line on stderr, exit 2.
bad() {
  printf 'install: %s\n%s\n' "$1" "$usage_line" >&2
  exit 2
}

prefix=/usr/local
destdir=${DESTDIR:-}
uninstall=0
allow_checked=0
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --prefix | --destdir)
      (($# >= 2)) || bad "$1 needs a DIR"
      if [[ $1 == --prefix ]]; then prefix=$2; else destdir=$2; fi
      shift
      ;;
    --prefix=*) prefix=${1#--prefix=} ;;
    --destdir=*) destdir=${1#--destdir=} ;;
    --uninstall) uninstall=1 ;;
    --allow-checked) allow_checked=1 ;;
    *) bad "unknown argument '$1'" ;;
  esac
  shift
done

# `bazel run` starts us in the runfiles tree; the user's relative paths mean
# the directory they ran bazel in.
absolute() {
  case $1 in
    /*) printf '%s' "$1" ;;
    *) printf '%s/%s' "${BUILD_WORKING_DIRECTORY:-$PWD}" "$1" ;;
  esac
}

[[ -n $prefix ]] || bad "--prefix needs a DIR"
prefix=$(absolute "$prefix")
# LD_PRELOAD splits on spaces and colons, and the paths go into generated
# files through sed: keep to characters that survive both.
[[ $prefix =~ ^[A-Za-z0-9._/+@=,~-]+$ ]] \
  || die "prefix '$prefix': use only letters, digits and . _ / + @ = , ~ - (LD_PRELOAD cannot name the rest)"
while [[ $prefix == */ && $prefix != / ]]; do prefix=${prefix%/}; done
if [[ -n $destdir ]]; then
  destdir=$(absolute "$destdir")
  destdir=${destdir%/}
fi
# Where the files go; ${prefix%/} keeps prefix / from doubling slashes.
root=$destdir${prefix%/}
libdir=${prefix%/}/lib

manifest=$root/$MANIFEST_REL

# The runfiles hold what is installed: next to the script under `bazel run`
# ($0.runfiles), or around it when a test runs it from its own runfiles.
find_data() {
  local d
  for d in "${RUNFILES_DIR:-/nonexistent}/hakmem" "$0.runfiles/hakmem" "$(dirname "$0")/../.."; do
    if [[ -f $d/tools/install/build_mode.txt ]]; then
      printf '%s' "$d"
      return 0
    fi
  done
  return 1
}

sha() { sha256sum -- "$1" | cut -d' ' -f1; }

# ---- uninstall --------------------------------------------------------------
if ((uninstall)); then
  [[ -f $manifest ]] || die "no hakmem install at $root ($MANIFEST_REL is missing): nothing removed"
  dirs=()
  kept=0
  while read -r kind a b; do
    case $kind in
      f)
        # Only paths inside the prefix: a manifest someone edited to say
        # ../../etc/passwd removes nothing outside it.
        [[ $b != /* && $b != .. && $b != ../* && $b != */.. && $b != */../* ]] \
          || die "manifest names '$b', outside the prefix: stopping"
        if [[ -f $root/$b || -L $root/$b ]]; then
          if [[ $(sha "$root/$b") == "$a" ]]; then
            rm -f -- "$root/$b"
            printf 'removed %s\n' "$root/$b"
          else
            printf 'install: %s changed since it was installed: left in place\n' "$root/$b" >&2
            kept=1
          fi
        fi
        ;;
      d)
        [[ $a != /* && $a != .. && $a != ../* && $a != */.. && $a != */../* ]] \
          || die "manifest names '$a', outside the prefix: stopping"
        dirs+=("$a")
        ;;
    esac
  done <"$manifest"
  rm -f -- "$manifest"
  printf 'removed %s\n' "$manifest"
  # Deepest first (a child sorts after its parent), and only if empty: a
  # directory holding anything of the user's stays.
  if ((${#dirs[@]})); then
    while read -r d; do
      if rmdir -- "$root/$d" 2>/dev/null; then
        printf 'removed %s/\n' "$root/$d"
      fi
    done < <(printf '%s\n' "${dirs[@]}" | sort -ru)
  fi
  ((kept == 0)) || printf 'install: changed files were kept (listed above)\n' >&2
  exit 0
fi

# ---- install ----------------------------------------------------------------
data=$(find_data) || die "cannot find the files to install next to $0 (run it with bazel run //:install)"
version=$(<"$data/tools/install/VERSION")
{ read -r mode; read -r sanitizer; } <"$data/tools/install/build_mode.txt"
if [[ $mode != release || $sanitizer != none ]]; then
  what="a $mode build"
  [[ $sanitizer == none ]] || what="$what with $sanitizer"
  if ((allow_checked)); then
    printf 'install: warning: installing %s, not a release build (--allow-checked)\n' "$what" >&2
  else
    die "these libraries are $what, not a release build: run
  bazel run --config=release //:install -- ...
(or add --allow-checked to install them anyway, for testing)"
  fi
fi

# A clear message before anything is written, rather than install(1)'s on
# the first file.
probe=$root
while [[ ! -e $probe ]]; do probe=$(dirname "$probe"); done
[[ -d $probe && -w $probe ]] || die "cannot write under $root ($probe is not writable: run as its owner, e.g. bazel run --run_under=sudo ...)"

# The manifest lines: "d DIR" for each directory this or an earlier install
# created, "f SHA256 FILE" for each file (paths relative to the prefix).
declare -A dir_seen=()
dir_lines=()
declare -A file_line=()
file_order=()
if [[ -f $manifest ]]; then
  while read -r kind a b; do
    case $kind in
      d) [[ -n ${dir_seen[$a]:-} ]] || { dir_seen[$a]=1; dir_lines+=("$a"); } ;;
      f) [[ -n ${file_line[$b]:-} ]] || file_order+=("$b"); file_line[$b]=$a ;;
    esac
  done <"$manifest"
fi

write_manifest() {
  local d f
  mkdir -p -- "$(dirname "$manifest")"
  {
    printf '# hakmem %s installed under %s (%s build); --uninstall removes only these.\n' \
      "$version" "$prefix" "$mode"
    for d in "${dir_lines[@]}"; do printf 'd %s\n' "$d"; done
    for f in "${file_order[@]}"; do printf 'f %s %s\n' "${file_line[$f]}" "$f"; done
  } >"$manifest.tmp"
  mv -f -- "$manifest.tmp" "$manifest"
}
# Written however the install ends, so a failed one can still be undone.
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"; write_manifest' EXIT

# mkdir -p, recording each directory it creates below the prefix.
make_dirs() {
  local rel=$1 part path=""
  mkdir -p -- "$root"
  local IFS=/
  for part in $rel; do
    path=${path:+$path/}$part
    if [[ ! -d $root/$path ]]; then
      mkdir -- "$root/$path"
      [[ -n ${dir_seen[$path]:-} ]] || { dir_seen[$path]=1; dir_lines+=("$path"); }
    fi
  done
}

# put MODE SRC REL: installs SRC as PREFIX/REL.
put() {
  local mode=$1 src=$2 rel=$3
  make_dirs "$(dirname "$rel")"
  # install(1) replaces the file rather than writing into it: programs that
  # have the old library mapped keep running.
  install -m "$mode" -- "$src" "$root/$rel"
  [[ -n ${file_line[$rel]:-} ]] || file_order+=("$rel")
  file_line[$rel]=$(sha "$root/$rel")
  printf 'installed %s\n' "$root/$rel"
}

# The manifest's own directory, recorded so that --uninstall removes it too.
make_dirs share/hakmem

put 0755 "$data/hakmem/libhakmem.so" lib/libhakmem.so
put 0755 "$data/hakmem/libhakmem_hardened.so" lib/libhakmem_hardened.so
put 0644 "$data/hakmem/core/include/hakmem.h" include/hakmem.h

sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" \
  "$data/tools/install/hakmem.pc.in" >"$tmp/hakmem.pc"
put 0644 "$tmp/hakmem.pc" lib/pkgconfig/hakmem.pc

sed -e "s|@LIBDIR@|$libdir|g" -e "s|@VERSION@|$version|g" \
  "$data/tools/install/hakmem.sh" >"$tmp/hakmem"
put 0755 "$tmp/hakmem" bin/hakmem

sed -e "s|@LIBDIR@|$libdir|g" -e "s|@VERSION@|$version|g" \
  "$data/tools/install/hakmem.1" >"$tmp/hakmem.1"
put 0644 "$tmp/hakmem.1" share/man/man1/hakmem.1

printf 'hakmem %s (%s build) installed under %s%s\n' "$version" "$mode" "$prefix" \
  "${destdir:+ (staged in $destdir)}"
