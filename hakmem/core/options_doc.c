// The README's options table and the man page's option list, printed from
// hak_options_table (options.c), so that what users read is what hakmem parses.
//
//   options_doc [--man]                 prints the table (--man: the troff list)
//   options_doc [--man] --check FILE    exit 1 when FILE's generated section differs
//   options_doc [--man] --write FILE    replaces FILE's generated section
// Under `bazel run`, FILE is relative to the workspace.
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

// Each output's markers, and the command (in its begin marker) that rewrites it.
typedef struct {
  const char *begin, *end, *command;
} format;

#define MD_COMMAND "bazel run //hakmem/core:options_doc -- --write README.md"
static const format k_markdown = {
    .begin = "<!-- BEGIN generated: " MD_COMMAND " -->\n",
    .end = "<!-- END generated: options table -->\n",
    .command = MD_COMMAND,
};
#define MAN_COMMAND "bazel run //hakmem/core:options_doc -- --man --write tools/install/hakmem.1"
static const format k_man = {
    .begin = ".\\\" BEGIN generated: " MAN_COMMAND "\n",
    .end = ".\\\" END generated: options\n",
    .command = MAN_COMMAND,
};

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

// The default, in Markdown.
static void add_default(text *t, const hak_option_def *d, const hak_options *defaults) {
  char value[sizeof defaults->prof_file];
  hak_options_format(d, defaults, value, sizeof value);
  if (d->def_doc != NULL)
    add(t, "%s", d->def_doc);
  else
    add(t, "`%s`%s", value, d->type == HAK_OPT_SIGNAL && d->def == 0 ? " (off)" : "");
}

// The values the option takes, in Markdown.
static void add_values(text *t, const hak_option_def *d) {
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
}

static void add_table(text *t) {
  add(t, "%s", k_markdown.begin);
  add(t, "| variable | default | values | meaning |\n| --- | --- | --- | --- |\n");
  hak_options defaults;
  hak_options_defaults(&defaults);
  for (size_t i = 0; i < hak_options_count; i++) {
    const hak_option_def *d = &hak_options_table[i];
    add(t, "| `%s` | ", d->name);
    add_default(t, d, &defaults);
    add(t, " | ");
    add_values(t, d);
    add(t, " | %s |\n", d->doc);
  }
  add(t, "%s", k_markdown.end);
}

// The Markdown of md as troff: code spans bold, one sentence per input line
// (so troff sees where sentences end), and nothing troff would take as a
// request, escape or special glyph. name: whose doc it is, for the error.
static void add_troff(text *t, const char *md, const char *name) {
  bool code = false;
  bool line_start = t->len == 0 || t->buf[t->len - 1] == '\n';
  for (const char *p = md; *p != '\0'; p++) {
    const char c = *p;
    // \% keeps a word with code unhyphenated; it must come first, mid-word it is a hyphen point.
    if (p == md || p[-1] == ' ' || p[-1] == '\n') {
      size_t n = strcspn(p, " \n");
      if (code || memchr(p, '`', n) != NULL) {
        add(t, "%s", "\\%");
        line_start = false;
      }
    }
    if (c == '`') {
      add(t, "%s", code ? "\\fR" : "\\fB");
      code = !code;
      line_start = false;
      continue;
    }
    // A control character at the start of a line would make it a request.
    if (line_start && (c == '.' || c == '\''))
      add(t, "\\&");
    line_start = c == '\n';
    if (c == '\\')
      add(t, "\\e");
    else if (c == '-')
      add(t, "%s", code ? "\\-" : "-"); // code is typed as is: a minus sign, not a hyphen
    else if (c == '\'')
      add(t, "%s", code ? "\\(aq" : "'"); // code's quote stays ASCII; prose's may curl
    else if (c == '^')
      add(t, "\\(ha");
    else if (c == '~')
      add(t, "\\(ti");
    else if (c == '.' && !code && p[1] == ' ' && (isupper((unsigned char)p[2]) || p[2] == '`')) {
      add(t, ".\n");
      p++;
      line_start = true;
    } else
      add(t, "%c", c);
  }
  if (code) {
    // Unclosed, the bold would run on into the next option.
    fprintf(stderr, "options_doc: %s: unbalanced ` in its doc (options.c)\n", name);
    exit(2);
  }
}

// md as a troff sentence: capitalised, ending with a full stop.
static void add_troff_sentence(text *t, const char *md, const char *name) {
  const size_t start = t->len;
  add_troff(t, md, name);
  if (t->len > start && islower((unsigned char)t->buf[start]))
    t->buf[start] = (char)toupper((unsigned char)t->buf[start]);
  if (t->len > start && t->buf[t->len - 1] != '.')
    add(t, ".");
  add(t, "\n");
}

// The ENVIRONMENT section's entries: a tagged paragraph per option.
static void add_man(text *t) {
  add(t, "%s", k_man.begin);
  hak_options defaults;
  hak_options_defaults(&defaults);
  text md = {0};
  for (size_t i = 0; i < hak_options_count; i++) {
    const hak_option_def *d = &hak_options_table[i];
    add(t, ".TP\n.B %s\n", d->name);
    add_troff_sentence(t, d->doc, d->name);
    add(t, ".br\n");
    md.len = 0;
    add(&md, "Default: ");
    add_default(&md, d, &defaults);
    add_troff_sentence(t, md.buf, d->name);
    md.len = 0;
    add(&md, "Values: ");
    add_values(&md, d);
    add_troff_sentence(t, md.buf, d->name);
  }
  free(md.buf);
  add(t, "%s", k_man.end);
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

#define USAGE "usage: options_doc [--man] [--check FILE | --write FILE]\n"

static int usage(void) {
  fputs(USAGE, stderr);
  return 2;
}

static int run(int argc, char **argv, text *out);

int main(int argc, char **argv) {
  text out = {0};
  int status = run(argc, argv, &out);
  free(out.buf); // LeakSanitizer checks this program too
  return status;
}

// Splices out into doc between fmt's markers, or compares; frees doc.
static int splice(const char *path, char *doc, size_t len, bool write, const format *fmt,
                  const text *out);

static int run(int argc, char **argv, text *out) {
  if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    printf(USAGE "Prints hakmem's options table as Markdown (--man: as the man page's troff\n"
                 "option list); --check fails (exit 1) when FILE's generated section differs,\n"
                 "--write replaces it.\n");
    return 0;
  }
  bool man = false;
  const char *mode = NULL, *file = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--man") == 0 && !man) {
      man = true;
    } else if ((strcmp(argv[i], "--check") == 0 || strcmp(argv[i], "--write") == 0) &&
               mode == NULL && i + 1 < argc) {
      mode = argv[i];
      file = argv[++i];
    } else {
      return usage();
    }
  }
  const format *fmt = man ? &k_man : &k_markdown;
  if (man)
    add_man(out);
  else
    add_table(out);
  if (mode == NULL) {
    fputs(out->buf, stdout);
    return 0;
  }
  const bool write = strcmp(mode, "--write") == 0;
  char path[4096];
  const char *ws = getenv("BUILD_WORKSPACE_DIRECTORY");
  if (ws != NULL && file[0] != '/')
    snprintf(path, sizeof path, "%s/%s", ws, file);
  else
    snprintf(path, sizeof path, "%s", file);
  size_t len = 0;
  char *doc = read_file(path, &len);
  if (doc == NULL) {
    fprintf(stderr, "options_doc: %s: %s\n", path, strerror(errno));
    return 2;
  }
  return splice(path, doc, len, write, fmt, out);
}

static int splice(const char *path, char *doc, size_t len, bool write, const format *fmt,
                  const text *out) {
  int status = 2;
  char *begin = strstr(doc, fmt->begin);
  char *end = begin != NULL ? strstr(begin, fmt->end) : NULL;
  if (begin == NULL || end == NULL) {
    fprintf(stderr, "options_doc: %s has no generated section (%.*s ... %.*s)\n", path,
            (int)strlen(fmt->begin) - 1, fmt->begin, (int)strlen(fmt->end) - 1, fmt->end);
    goto out;
  }
  end += strlen(fmt->end);
  size_t old_len = (size_t)(end - begin);
  if (old_len == out->len && memcmp(begin, out->buf, old_len) == 0) {
    printf("options_doc: %s: the generated section is up to date\n", path);
    status = 0;
    goto out;
  }
  if (!write) {
    fprintf(stderr,
            "options_doc: %s: the generated section differs from hak_options_table (options.c); "
            "run: %s\n--- expected:\n%s",
            path, fmt->command, out->buf);
    status = 1;
    goto out;
  }
  FILE *f = fopen(path, "wb");
  bool ok = f != NULL && fwrite(doc, 1, (size_t)(begin - doc), f) == (size_t)(begin - doc) &&
            fwrite(out->buf, 1, out->len, f) == out->len &&
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
