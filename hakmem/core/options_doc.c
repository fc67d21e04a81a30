// The README's options table, printed from hak_options_table (options.c), so
// that the table users read is the one hakmem parses.
//
//   options_doc                 prints the table
//   options_doc --check FILE    exit 1 when FILE's generated section differs
//   options_doc --write FILE    replaces FILE's generated section
// Under `bazel run`, FILE is relative to the workspace.
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

static const char k_begin[] =
    "<!-- BEGIN generated: bazel run //hakmem/core:options_doc -- --write README.md -->\n";
static const char k_end[] = "<!-- END generated: options table -->\n";

typedef struct {
  char *buf;
  size_t len, cap;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      perror("options_doc");
      exit(2);
    }
    if (t->len + (size_t)n < t->cap) {
      t->len += (size_t)n;
      return;
    }
    t->cap = (t->cap + (size_t)n + 1) * 2;
    t->buf = realloc(t->buf, t->cap);
    if (t->buf == NULL) {
      perror("options_doc");
      exit(2);
    }
  }
}

// A bound as the README writes it: 2^k for the large powers of two.
static void add_bound(text *t, unsigned long long v) {
  if (v >= (1ull << 16) && (v & (v - 1)) == 0)
    add(t, "`2^%d`", __builtin_ctzll(v));
  else
    add(t, "`%llu`", v);
}

static void add_choices(text *t, const hak_option_def *d) {
  size_t n;
  const char *w;
  for (unsigned i = 0; (w = hak_options_choice(d, i, &n)) != NULL; i++)
    add(t, "%s`%.*s`", i == 0 ? "" : ", ", (int)n, w);
}

static void add_table(text *t) {
  add(t, "%s", k_begin);
  add(t, "| variable | default | values | meaning |\n| --- | --- | --- | --- |\n");
  hak_options defaults;
  hak_options_defaults(&defaults);
  for (size_t i = 0; i < hak_options_count; i++) {
    const hak_option_def *d = &hak_options_table[i];
    char value[sizeof defaults.prof_file];
    hak_options_format(d, &defaults, value, sizeof value);
    add(t, "| `%s` | ", d->name);
    if (d->def_doc != NULL)
      add(t, "%s", d->def_doc);
    else
      add(t, "`%s`%s", value, d->type == HAK_OPT_SIGNAL && d->def == 0 ? " (off)" : "");
    add(t, " | ");
    switch (d->type) {
    case HAK_OPT_UINT:
    case HAK_OPT_MIB:
      if (d->lo == 0 && d->hi == 1) {
        add(t, "`0`, `1`");
      } else {
        add_bound(t, d->lo);
        add(t, "..");
        add_bound(t, d->hi);
        add(t, "%s", d->type == HAK_OPT_MIB ? " MiB" : "");
      }
      break;
    case HAK_OPT_CHOICE:
      add_choices(t, d);
      break;
    case HAK_OPT_SIGNAL:
      add(t, "a signal name or number, `0`, `off`");
      break;
    case HAK_OPT_STRING:
      add(t, "1 to %zu bytes", d->width - 1);
      break;
    }
    add(t, " | %s |\n", d->doc);
  }
  add(t, "%s", k_end);
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  char *buf = NULL;
  long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL &&
      fread(buf, 1, (size_t)n, f) == (size_t)n) {
    buf[n] = '\0';
    *len = (size_t)n;
  } else {
    free(buf);
    buf = NULL;
    errno = errno != 0 ? errno : EIO;
  }
  fclose(f);
  return buf;
}

static int usage(void) {
  fprintf(stderr, "usage: options_doc [--check FILE | --write FILE]\n");
  return 2;
}

static int run(int argc, char **argv, const text *tablep);

int main(int argc, char **argv) {
  text table = {0};
  add_table(&table);
  int status = run(argc, argv, &table);
  free(table.buf); // LeakSanitizer checks this program too
  return status;
}

// Splices into doc between begin and end, or compares; frees doc.
static int splice(const char *path, char *doc, size_t len, bool write, const text *tablep);

static int run(int argc, char **argv, const text *tablep) {
  const text table = *tablep;
  if (argc == 1) {
    fputs(table.buf, stdout);
    return 0;
  }
  if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    printf("usage: options_doc [--check FILE | --write FILE]\n"
           "Prints hakmem's options table as Markdown; --check fails (exit 1) when FILE's\n"
           "generated section differs, --write replaces it.\n");
    return 0;
  }
  if (argc != 3 || (strcmp(argv[1], "--check") != 0 && strcmp(argv[1], "--write") != 0))
    return usage();
  const bool write = strcmp(argv[1], "--write") == 0;
  char path[4096];
  const char *ws = getenv("BUILD_WORKSPACE_DIRECTORY");
  if (write && ws != NULL && argv[2][0] != '/')
    snprintf(path, sizeof path, "%s/%s", ws, argv[2]);
  else
    snprintf(path, sizeof path, "%s", argv[2]);
  size_t len = 0;
  char *doc = read_file(path, &len);
  if (doc == NULL) {
    fprintf(stderr, "options_doc: %s: %s\n", path, strerror(errno));
    return 2;
  }
  return splice(path, doc, len, write, tablep);
}

static int splice(const char *path, char *doc, size_t len, bool write, const text *tablep) {
  const text table = *tablep;
  int status = 2;
  char *begin = strstr(doc, k_begin);
  char *end = begin != NULL ? strstr(begin, k_end) : NULL;
  if (begin == NULL || end == NULL) {
    fprintf(stderr, "options_doc: %s has no generated section (%.*s ... %.*s)\n", path,
            (int)strlen(k_begin) - 1, k_begin, (int)strlen(k_end) - 1, k_end);
    goto out;
  }
  end += strlen(k_end);
  size_t old_len = (size_t)(end - begin);
  if (old_len == table.len && memcmp(begin, table.buf, old_len) == 0) {
    printf("options_doc: %s: the options table is up to date\n", path);
    status = 0;
    goto out;
  }
  if (!write) {
    fprintf(stderr,
            "options_doc: %s: the options table differs from hak_options_table (options.c); "
            "run: bazel run //hakmem/core:options_doc -- --write README.md\n--- expected:\n%s",
            path, table.buf);
    status = 1;
    goto out;
  }
  FILE *f = fopen(path, "wb");
  bool ok = f != NULL && fwrite(doc, 1, (size_t)(begin - doc), f) == (size_t)(begin - doc) &&
            fwrite(table.buf, 1, table.len, f) == table.len &&
            fwrite(end, 1, len - (size_t)(end - doc), f) == len - (size_t)(end - doc);
  if (f != NULL && fclose(f) != 0)
    ok = false;
  if (!ok) {
    fprintf(stderr, "options_doc: writing %s: %s\n", path, strerror(errno));
    goto out;
  }
  printf("options_doc: %s: updated\n", path);
  status = 0;
out:
  free(doc);
  return status;
}
