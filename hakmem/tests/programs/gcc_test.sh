#!/usr/bin/env bash
# gcc with hakmem preloaded (into the driver, cc1, as, collect2 and ld):
# builds a generated multi-file C program (20 modules and a header) with -O2,
# links it and runs it. The object files' symbol tables (nm) and bytes, the
# linked program and its output must match a build without hakmem.
TEST_NAME=gcc
lib=hakmem/tests/programs/lib.sh
[[ -f ${lib} ]] || lib="$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=lib.sh
source "${lib}"

need gcc nm cmp

MODULES=20
src="${WORK}/src"
mkdir -p "${src}"

# The program: each module has a table-driven state machine, a hash table
# of strings, a linked list sorted by merge sort and a recursive expression
# evaluator, with enough inlining and unrolling at -O2 to keep cc1 busy.
plain /usr/bin/python3 - "${src}" "${MODULES}" <<'EOF'
import os
import sys

out, modules = sys.argv[1], int(sys.argv[2])

header = ["#ifndef GEN_H", "#define GEN_H", "#include <stddef.h>", "#include <stdint.h>",
          "struct node { struct node *next; uint64_t key; char *text; };",
          "struct table { size_t cap, len; struct node **slots; };",
          "uint64_t gen_hash(const char *s);",
          "char *gen_strdup_printf(const char *fmt, unsigned long a, unsigned long b);",
          "void table_init(struct table *t, size_t cap);",
          "int table_put(struct table *t, const char *text, uint64_t key);",
          "uint64_t table_sum(const struct table *t);",
          "void table_free(struct table *t);"]
for m in range(modules):
    header.append("uint64_t module%02d_run(unsigned n);" % m)
header.append("#endif")
with open(os.path.join(out, "gen.h"), "w") as f:
    f.write("\n".join(header) + "\n")

with open(os.path.join(out, "util.c"), "w") as f:
    f.write(r'''#include "gen.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t gen_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
  return h;
}

char *gen_strdup_printf(const char *fmt, unsigned long a, unsigned long b) {
  int n = snprintf(NULL, 0, fmt, a, b);
  char *s = malloc((size_t)n + 1);
  if (s) snprintf(s, (size_t)n + 1, fmt, a, b);
  return s;
}

void table_init(struct table *t, size_t cap) {
  t->cap = cap;
  t->len = 0;
  t->slots = calloc(cap, sizeof *t->slots);
}

static void table_grow(struct table *t) {
  struct table bigger;
  table_init(&bigger, t->cap * 2);
  for (size_t i = 0; i < t->cap; i++) {
    struct node *n = t->slots[i];
    while (n) {
      struct node *next = n->next;
      size_t at = gen_hash(n->text) % bigger.cap;
      n->next = bigger.slots[at];
      bigger.slots[at] = n;
      n = next;
    }
  }
  free(t->slots);
  t->slots = bigger.slots;
  t->cap = bigger.cap;
}

int table_put(struct table *t, const char *text, uint64_t key) {
  if (t->len * 2 > t->cap) table_grow(t);
  size_t at = gen_hash(text) % t->cap;
  for (struct node *n = t->slots[at]; n; n = n->next)
    if (strcmp(n->text, text) == 0) { n->key += key; return 0; }
  struct node *n = malloc(sizeof *n);
  n->text = malloc(strlen(text) + 1);
  strcpy(n->text, text);
  n->key = key;
  n->next = t->slots[at];
  t->slots[at] = n;
  t->len++;
  return 1;
}

uint64_t table_sum(const struct table *t) {
  uint64_t s = 0;
  for (size_t i = 0; i < t->cap; i++)
    for (struct node *n = t->slots[i]; n; n = n->next) s = s * 31 + n->key + gen_hash(n->text);
  return s;
}

void table_free(struct table *t) {
  for (size_t i = 0; i < t->cap; i++) {
    struct node *n = t->slots[i];
    while (n) { struct node *next = n->next; free(n->text); free(n); n = next; }
  }
  free(t->slots);
}
''')

for m in range(modules):
    ops = ["+", "-", "^", "*", "|"]
    lines = ['#include "gen.h"', "#include <stdlib.h>", "#include <string.h>", ""]
    # A state machine over a table.
    lines.append("static const uint8_t next_state%02d[16][4] = {" % m)
    for s in range(16):
        lines.append("  {%s}," % ", ".join(str((s * (m + 3) + k * 5 + 1) % 16) for k in range(4)))
    lines.append("};")
    # Expression tree.
    lines.append("struct expr%02d { int op; long value; struct expr%02d *l, *r; };" % (m, m))
    lines.append("static struct expr%02d *build%02d(unsigned depth, unsigned seed) {" % (m, m))
    lines.append("  struct expr%02d *e = malloc(sizeof *e);" % m)
    lines.append("  e->op = depth == 0 ? -1 : (int)(seed %% %d);" % len(ops))
    lines.append("  e->value = (long)(seed % 1000) - 500;")
    lines.append("  e->l = depth ? build%02d(depth - 1, seed * 1103515245u + 12345u) : NULL;" % m)
    lines.append("  e->r = depth ? build%02d(depth - 1, seed * 69069u + %du) : NULL;" % (m, m + 1))
    lines.append("  return e;")
    lines.append("}")
    lines.append("static long eval%02d(const struct expr%02d *e) {" % (m, m))
    lines.append("  if (e->op < 0) return e->value;")
    lines.append("  long a = eval%02d(e->l), b = eval%02d(e->r);" % (m, m))
    lines.append("  switch (e->op) {")
    for i, o in enumerate(ops):
        lines.append("  case %d: return (a %s b) %% 1000003;" % (i, o))
    lines.append("  }")
    lines.append("  return 0;")
    lines.append("}")
    lines.append("static void drop%02d(struct expr%02d *e) { if (e) { drop%02d(e->l); drop%02d(e->r); free(e); } }"
                 % (m, m, m, m))
    # Merge sort of a linked list.
    lines.append("static struct node *merge%02d(struct node *a, struct node *b) {" % m)
    lines.append("  struct node head = {0}, *tail = &head;")
    lines.append("  while (a && b) {")
    lines.append("    if (a->key <= b->key) { tail->next = a; a = a->next; } else { tail->next = b; b = b->next; }")
    lines.append("    tail = tail->next;")
    lines.append("  }")
    lines.append("  tail->next = a ? a : b;")
    lines.append("  return head.next;")
    lines.append("}")
    lines.append("static struct node *sort%02d(struct node *l) {" % m)
    lines.append("  if (!l || !l->next) return l;")
    lines.append("  struct node *slow = l, *fast = l->next;")
    lines.append("  while (fast && fast->next) { slow = slow->next; fast = fast->next->next; }")
    lines.append("  struct node *right = slow->next; slow->next = NULL;")
    lines.append("  return merge%02d(sort%02d(l), sort%02d(right));" % (m, m, m))
    lines.append("}")
    # Entry point.
    lines.append("uint64_t module%02d_run(unsigned n) {" % m)
    lines.append("  uint64_t acc = %du;" % (m * 977 + 1))
    lines.append("  unsigned state = 0;")
    lines.append("  struct table t;")
    lines.append("  table_init(&t, 8);")
    lines.append("  struct node *list = NULL;")
    lines.append("  for (unsigned i = 0; i < n; i++) {")
    lines.append("    state = next_state%02d[state][(i ^ (unsigned)acc) & 3];" % m)
    lines.append("    char *s = gen_strdup_printf(\"m%02d-%%lu-%%lu\", i %% %d, state);" % (m, 50 + m * 7))
    lines.append("    table_put(&t, s, i);")
    lines.append("    struct node *x = malloc(sizeof *x);")
    lines.append("    x->key = gen_hash(s) % 100000; x->text = s; x->next = list; list = x;")
    lines.append("    acc = acc * 6364136223846793005ull + state;")
    lines.append("  }")
    lines.append("  list = sort%02d(list);" % m)
    lines.append("  for (struct node *x = list; x;) { struct node *next = x->next; acc ^= x->key + (acc << 7); free(x->text); free(x); x = next; }")
    lines.append("  struct expr%02d *e = build%02d(%d, (unsigned)acc);" % (m, m, 8 + m % 4))
    lines.append("  acc += (uint64_t)eval%02d(e);" % m)
    lines.append("  drop%02d(e);" % m)
    lines.append("  acc ^= table_sum(&t);")
    lines.append("  table_free(&t);")
    lines.append("  return acc;")
    lines.append("}")
    with open(os.path.join(out, "module%02d.c" % m), "w") as f:
        f.write("\n".join(lines) + "\n")

main = ['#include "gen.h"', "#include <stdio.h>", "", "int main(void) {", "  uint64_t total = 0;"]
for m in range(modules):
    main.append('  { uint64_t r = module%02d_run(%d); printf("module%02d %%016llx\\n", (unsigned long long)r); total ^= r; }'
                % (m, 2000 + 300 * m, m))
main.append('  printf("total %016llx\\n", (unsigned long long)total);')
main.append("  return 0;")
main.append("}")
with open(os.path.join(out, "main.c"), "w") as f:
    f.write("\n".join(main) + "\n")
EOF

sources=(main.c util.c)
for m in $(seq -f '%02g' 0 $((MODULES - 1))); do sources+=("module${m}.c"); done

# build RUNNER DIR: compiles each source to an object with -O2 (relative
# paths, so the objects do not depend on the directory), links, runs.
build() {
  local runner=$1 dir=$2 f
  rm -rf "${dir}"
  mkdir -p "${dir}"
  cp "${src}"/*.c "${src}"/gen.h "${dir}/"
  (
    cd "${dir}" || exit 1
    run() {
      if [[ ${runner} == plain ]]; then plain "$@"; else hakmem "${dir}.stats" "$@"; fi
    }
    for f in "${sources[@]}"; do
      run gcc -O2 -Wall -Werror -frandom-seed="${f}" -c "${f}" -o "${f%.c}.o" || exit 1
    done
    run gcc -O2 -o prog ./*.o || exit 1
    run ./prog >output.txt || exit 1
    for f in "${sources[@]}"; do plain nm "${f%.c}.o"; done >symbols.txt || exit 1
  ) >"${dir}.log" 2>&1
}

# build_plain: the build without hakmem (made once for every variant: see
# plain_baseline in lib.sh).
build_plain() {
  build plain "${WORK}/plain" || { show_tail "${WORK}/plain.log"; die "building or running the program failed without hakmem"; }
}

step "build and run without hakmem"
# The generator (python3), the compiler, the assembler and the linker.
plain_baseline "$(plain /usr/bin/python3 --version; plain gcc --version | head -n 1
  plain as --version | head -n 1; plain ld --version | head -n 1)" build_plain
check "${#sources[@]} sources compiled, program ran: $(tail -n 1 "${WORK}/plain/output.txt")"
echo "  in ${SECONDS} s"

step "build and run with hakmem"
t0=${SECONDS}
build hakmem "${WORK}/hakmem" || { show_tail "${WORK}/hakmem.log"; die "building or running the program failed with hakmem preloaded"; }
echo "  in $((SECONDS - t0)) s"
check "program output identical"
same_file "${WORK}/plain/output.txt" "${WORK}/hakmem/output.txt" "the program's output"
check "nm of every object identical"
same_file "${WORK}/plain/symbols.txt" "${WORK}/hakmem/symbols.txt" "nm of the objects"
check "every object file and the linked program identical byte for byte"
for f in "${sources[@]}"; do
  same_file "${WORK}/plain/${f%.c}.o" "${WORK}/hakmem/${f%.c}.o" "object ${f%.c}.o"
done
same_file "${WORK}/plain/prog" "${WORK}/hakmem/prog" "the linked program"
expect_served "${WORK}/hakmem.stats" "${WORK}/hakmem.log"

finish
